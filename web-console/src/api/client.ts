// The typed admin API client: paths and bodies come from schema.d.ts, which
// openapi-typescript generates from the app's own OpenAPI document
// (`npm run openapi`), so a changed endpoint breaks `vue-tsc`, not the page.
import createClient, { type Middleware } from 'openapi-fetch'
import type { components, paths } from './schema'

export type Schemas = components['schemas']
export type ServiceItem = Schemas['ServiceItem']
export type ServiceDetail = Schemas['ServiceDetail']
export type Instance = Schemas['Instance']
export type Connection = Schemas['Connection']
export type RoutingRule = Schemas['RoutingRule']
export type RuleRequest = Schemas['RuleRequest']
export type RoutingTestResult = Schemas['RoutingTestResult']
export type Overview = Schemas['Overview']
export type AuditEvent = Schemas['AuditEvent']
export type LogLine = Schemas['LogLine']
export type LogSearchHit = Schemas['LogSearchHit']
export type RegisterRequest = Schemas['RegisterRequest']
export type ConfigChanges = Schemas['ConfigChanges']

/** An answer `{"success": false, "error": {...}}`, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

type Hooks = { token: () => string | null; unauthorized: () => void }
const hooks: Hooks = { token: () => null, unauthorized: () => {} }

/** Where the token comes from and who hears of a 401 (the auth store sets both). */
export function configureAuth(next: Partial<Hooks>): void {
  Object.assign(hooks, next)
}

export function authHeaders(): Record<string, string> {
  const token = hooks.token()
  return token ? { Authorization: `Bearer ${token}` } : {}
}

const auth: Middleware = {
  onRequest({ request }) {
    const token = hooks.token()
    if (token) request.headers.set('Authorization', `Bearer ${token}`)
    return request
  },
  onResponse({ response }) {
    if (response.status === 401) hooks.unauthorized()
    return response
  },
}

export const api = createClient<paths>({ baseUrl: '' })
api.use(auth)

type Answer<T> = { data?: { data: T }; error?: unknown; response: Response }

/** The `data` of a successful answer; an ApiError carrying the API's message otherwise. */
export async function unwrap<T>(request: Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>
  try {
    answer = await request
  } catch (error) {
    throw new ApiError(0, 'NETWORK', `agentvisor did not answer: ${String(error)}`)
  }
  if (answer.data !== undefined && answer.response.ok) return answer.data.data
  const body = answer.error as { error?: { code?: string; message?: string; details?: object } }
  const error = body?.error
  throw new ApiError(
    answer.response.status,
    error?.code ?? `HTTP_${answer.response.status}`,
    error?.message ?? `HTTP ${answer.response.status} ${answer.response.statusText}`,
    (error?.details ?? {}) as Record<string, unknown>,
  )
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
