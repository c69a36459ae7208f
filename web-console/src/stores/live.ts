// One live event stream for the whole console; pages subscribe to the kinds they show.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { LiveStream, type StreamEvent, type StreamStatus } from '../api/stream'

type Listener = (event: StreamEvent) => void

export const useLive = defineStore('live', () => {
  const status = ref<StreamStatus>('closed')
  const received = ref(0)
  const listeners = new Set<{ prefix: string; fn: Listener }>()

  const stream = new LiveStream({
    onEvent(event) {
      received.value += 1
      for (const { prefix, fn } of listeners) {
        if (!prefix || event.kind === prefix || event.kind.startsWith(`${prefix}.`)) fn(event)
      }
    },
    onStatus(next) {
      status.value = next
    },
  })

  /** Call `fn` for each event whose kind is `prefix` or in its group; returns the unsubscribe. */
  function on(prefix: string, fn: Listener): () => void {
    const entry = { prefix, fn }
    listeners.add(entry)
    return () => listeners.delete(entry)
  }

  return { status, received, on, start: () => stream.start(), stop: () => stream.stop(), restart: () => stream.restart() }
})
