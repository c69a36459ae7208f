// The live event stream (`GET /api/v1/events/stream`, server-sent events).
// Read with fetch, not EventSource: EventSource cannot send the bearer token.
// Reconnects on its own, waiting the server's `retry:` (3 s) and up to 15 s
// while agentvisor is away.
import { authHeaders } from './client'

export type StreamEvent = { kind: string; data: Record<string, unknown> }
export type StreamStatus = 'connecting' | 'open' | 'closed'

/** Split complete SSE messages off the front of `buffer`; what is left is incomplete. */
export function parseSse(buffer: string): { events: StreamEvent[]; retry: number | null; rest: string } {
  const events: StreamEvent[] = []
  let retry: number | null = null
  const text = buffer.replace(/\r\n?/g, '\n')
  const blocks = text.split('\n\n')
  const rest = blocks.pop() ?? ''
  for (const block of blocks) {
    let kind = 'message'
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      let value = colon < 0 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'event') kind = value
      else if (field === 'data') data.push(value)
      else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value)
    }
    if (!data.length) continue
    try {
      events.push({ kind, data: JSON.parse(data.join('\n')) as Record<string, unknown> })
    } catch {
      // not JSON: not one of ours; skip it
    }
  }
  return { events, retry, rest }
}

export type StreamOptions = {
  url?: string
  onEvent: (event: StreamEvent) => void
  onStatus?: (status: StreamStatus) => void
  fetcher?: typeof fetch
}

export class LiveStream {
  private controller: AbortController | null = null
  private stopped = true
  private retryMs = 3000
  private failures = 0
  private timer: ReturnType<typeof setTimeout> | null = null

  constructor(private readonly options: StreamOptions) {}

  start(): void {
    if (!this.stopped) return
    this.stopped = false
    void this.connect()
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.controller?.abort()
    this.controller = null
    this.options.onStatus?.('closed')
  }

  /** Drop the current connection and open a new one now (after a new token, say). */
  restart(): void {
    this.stop()
    this.start()
  }

  private async connect(): Promise<void> {
    const { onEvent, onStatus } = this.options
    const fetcher = this.options.fetcher ?? fetch.bind(globalThis)
    this.controller = new AbortController()
    onStatus?.('connecting')
    try {
      const response = await fetcher(this.options.url ?? '/api/v1/events/stream', {
        headers: { Accept: 'text/event-stream', ...authHeaders() },
        signal: this.controller.signal,
        cache: 'no-store',
      })
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`)
      onStatus?.('open')
      this.failures = 0
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        const parsed = parseSse(buffer + value)
        buffer = parsed.rest
        if (parsed.retry !== null) this.retryMs = parsed.retry
        for (const event of parsed.events) onEvent(event)
      }
    } catch {
      // the server went away, refused us, or we were stopped: retry below unless stopped
    }
    if (this.stopped) return
    onStatus?.('closed')
    this.failures += 1
    const delay = Math.min(15000, this.retryMs * Math.min(this.failures, 5))
    this.timer = setTimeout(() => void this.connect(), delay)
  }
}
