// The one fake in the unit tests: `fetch` at the boundary of the front end (the typed
// client captures fetch when it is created, so it is installed before any import).
type Handler = (request: Request) => Response | Promise<Response>

export const seen: Request[] = []
let handler: Handler = (request) => {
  throw new Error(`no answer set for ${request.method} ${request.url}`)
}

/** Answer every following fetch with `next`; what was asked is in `seen`. */
export function answer(next: Handler): void {
  seen.length = 0
  handler = next
}

export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
}

globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
  const request = input instanceof Request ? input : new Request(new URL(String(input), location.href), init)
  seen.push(request)
  return handler(request)
}) as typeof fetch
