// Where a CONFIG_INVALID (or INVALID_REQUEST) answer's problems belong in a form.
// The API reports each problem as "<file>:LINE:COL agents.NAME.KEY: message".
import { ApiError } from '../api/client'

export type FieldErrors = Record<string, string>

/** Field → message for the keys of `agents.<service>`; problems elsewhere go under "". */
export function fieldErrors(error: unknown, service: string, fields: readonly string[]): FieldErrors {
  const out: FieldErrors = {}
  if (!(error instanceof ApiError)) return out
  const add = (field: string, message: string) => {
    out[field] = out[field] ? `${out[field]}; ${message}` : message
  }
  if (error.code === 'CONFIG_INVALID') {
    const lines = Array.isArray(error.details.errors) ? (error.details.errors as string[]) : [error.message]
    const prefix = `agents.${service}.`
    for (const line of lines) {
      const match = /(\S+): (.*)$/.exec(line.replace(/^\S*:\d+:\d+ /, '').replace(/^<config> /, ''))
      const path = match?.[1] ?? ''
      const message = match?.[2] ?? line
      if (path.startsWith(prefix)) {
        const key = path.slice(prefix.length).split(/[.[]/)[0]
        add(fields.includes(key) ? key : 'config', message)
      } else add('', line)
    }
    return out
  }
  if (error.code === 'INVALID_REQUEST' || error.code === 'VALIDATION_ERROR') {
    // The body's schema names the field in details.field ("replicas", "config.replicas").
    const field = typeof error.details.field === 'string' ? error.details.field : undefined
    const named = field?.replace(/^config\./, '').split(/[.[]/)[0] ?? /'([a-z_]+)'/.exec(error.message)?.[1]
    add(named && fields.includes(named) ? named : '', error.message)
  }
  return out
}
