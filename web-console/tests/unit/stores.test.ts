// The stores and the API client against a faked fetch: tokens, 401s, errors, the live stream.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { answer, json, seen } from './fakeFetch'
import { ApiError, api, unwrap } from '../../src/api/client'
import { LiveStream, type StreamEvent, type StreamStatus } from '../../src/api/stream'
import { useAuth } from '../../src/stores/auth'
import { useLive } from '../../src/stores/live'

/** A streaming SSE answer: `push` a chunk, `end` the stream (agentvisor went away). */
function sseAnswer() {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) })
  const encoder = new TextEncoder()
  return {
    response: new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } }),
    push: (text: string) => controller.enqueue(encoder.encode(text)),
    end: () => controller.close(),
  }
}

beforeEach(() => {
  sessionStorage.clear()
  setActivePinia(createPinia())
})
afterEach(() => {
  vi.useRealTimers()
})

describe('auth store', () => {
  test('a token is kept in session storage and sent with every call', async () => {
    const auth = useAuth()
    auth.setToken('  s3cret ')
    expect(sessionStorage.getItem('agentvisor.token')).toBe('s3cret')
    answer(() => json(200, { success: true, data: { version: '1' } }))
    await unwrap(api.GET('/api/v1/info'))
    expect(seen[0].headers.get('Authorization')).toBe('Bearer s3cret')
    auth.setToken('')
    expect(sessionStorage.getItem('agentvisor.token')).toBeNull()
  })

  test('a 401 asks for the token, and the API message is the error', async () => {
    const auth = useAuth()
    answer(() => json(401, { success: false, error: { code: 'UNAUTHORIZED', message: 'a bearer token is required' } }))
    const failure = await unwrap(api.GET('/api/v1/info')).catch((e: unknown) => e)
    expect(auth.needed).toBe(true)
    expect(failure).toBeInstanceOf(ApiError)
    expect((failure as ApiError).message).toBe('a bearer token is required')
    expect((failure as ApiError).code).toBe('UNAUTHORIZED')
  })

  test('no answer at all is a NETWORK error that says so', async () => {
    answer(() => {
      throw new TypeError('Failed to fetch')
    })
    const failure = (await unwrap(api.GET('/api/v1/info')).catch((e: unknown) => e)) as ApiError
    expect(failure.code).toBe('NETWORK')
    expect(failure.message).toContain('agentvisor did not answer')
  })
})

describe('live stream', () => {
  test('events split across chunks arrive whole, in order, to the kinds that asked', async () => {
    const stream = sseAnswer()
    answer(() => stream.response)
    const live = useLive()
    const states: StreamEvent[] = []
    const all: string[] = []
    live.on('instance', (e) => states.push(e))
    const off = live.on('', (e) => all.push(e.kind))
    live.start()
    await vi.waitFor(() => expect(live.status).toBe('open'))
    stream.push('retry: 3000\n\nevent: instance.state\ndata: {"service":"a","st')
    stream.push('ate":"running"}\n\nevent: log.line\ndata: {"text":"hi"}\n\n')
    await vi.waitFor(() => expect(live.received).toBe(2))
    expect(states).toEqual([{ kind: 'instance.state', data: { service: 'a', state: 'running' } }])
    expect(all).toEqual(['instance.state', 'log.line'])
    off()
    stream.push('event: instanceless\ndata: {}\n\n')
    await vi.waitFor(() => expect(live.received).toBe(3))
    expect(states).toHaveLength(1) // "instanceless" is not in the "instance" group
    expect(all).toHaveLength(2) // unsubscribed
    live.stop()
    expect(live.status).toBe('closed')
  })

  test('a dropped or refused stream reconnects by itself, waiting longer after each failure', async () => {
    vi.useFakeTimers()
    const statuses: StreamStatus[] = []
    const events: string[] = []
    let calls = 0
    const streams: ReturnType<typeof sseAnswer>[] = []
    const stream = new LiveStream({
      onEvent: (e) => events.push(e.kind),
      onStatus: (s) => statuses.push(s),
      fetcher: async () => {
        calls += 1
        if (calls === 2 || calls === 3) return json(503, {}) // agentvisor restarting
        const next = sseAnswer()
        streams.push(next)
        return next.response
      },
    })
    const flush = async () => {
      for (let i = 0; i < 50; i++) await Promise.resolve()
    }
    stream.start()
    await flush()
    expect(statuses).toEqual(['connecting', 'open'])
    streams[0].push('retry: 1000\n\nevent: a\ndata: {}\n\n')
    await flush()
    expect(events).toEqual(['a'])
    streams[0].end() // the server went away
    await flush()
    expect(statuses.at(-1)).toBe('closed')
    await vi.advanceTimersByTimeAsync(999)
    expect(calls).toBe(1) // waits the server's retry (1 s)
    await vi.advanceTimersByTimeAsync(1)
    expect(calls).toBe(2) // refused (503)
    await vi.advanceTimersByTimeAsync(1999)
    expect(calls).toBe(2) // two failures in a row: 2 s
    await vi.advanceTimersByTimeAsync(1)
    expect(calls).toBe(3) // refused again
    await vi.advanceTimersByTimeAsync(2999)
    expect(calls).toBe(3) // three in a row: 3 s
    await vi.advanceTimersByTimeAsync(1)
    await flush()
    expect(calls).toBe(4)
    expect(statuses.at(-1)).toBe('open')
    streams[1].push('event: b\ndata: {}\n\n')
    await flush()
    expect(events).toEqual(['a', 'b'])
    stream.stop()
    await vi.advanceTimersByTimeAsync(60_000)
    expect(calls).toBe(4) // stopped: no more reconnects
  })

  test('every reconnect carries the current token', async () => {
    const auth = useAuth()
    auth.setToken('t1')
    const headers: (string | null)[] = []
    const stream = new LiveStream({
      onEvent: () => {},
      fetcher: async (_url, init) => {
        headers.push(new Headers(init?.headers).get('Authorization'))
        return sseAnswer().response
      },
    })
    stream.start()
    await vi.waitFor(() => expect(headers).toHaveLength(1))
    auth.setToken('t2')
    stream.restart()
    await vi.waitFor(() => expect(headers).toHaveLength(2))
    expect(headers).toEqual(['Bearer t1', 'Bearer t2'])
    stream.stop()
  })
})
