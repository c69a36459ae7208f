// How figures read in the console.
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '—'
  const s = Math.floor(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`
}

export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—'
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let v = value
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i += 1
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`
}

export function percent(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined ? '—' : `${value.toFixed(digits)}%`
}

export function time(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === '') return '—'
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value)
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString()
}

export function since(value: string | null | undefined, now = Date.now()): string {
  if (!value) return '—'
  return duration((now - new Date(value).getTime()) / 1000)
}

/** Element Plus tag type for a service or instance state. */
export function stateType(state: string): 'success' | 'warning' | 'danger' | 'info' | 'primary' {
  if (state === 'running' || state === 'healthy') return 'success'
  if (state === 'fatal' || state === 'exited' || state === 'unhealthy') return 'danger'
  if (state === 'backoff' || state === 'degraded' || state === 'starting' || state === 'stopping') return 'warning'
  if (state === 'waiting') return 'primary'
  return 'info'
}
