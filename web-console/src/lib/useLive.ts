// A page's data that reloads itself: on mount, on the live events it names
// (coalesced, at most one reload per `delay`), and every `pollMs` as a fallback.
import { onMounted, onUnmounted, ref } from 'vue'
import { messageOf } from '../api/client'
import { useLive } from '../stores/live'

export function useLiveData<T>(
  load: () => Promise<T>,
  options: { kinds?: string[]; delay?: number; pollMs?: number } = {},
) {
  const data = ref<T | null>(null)
  const loading = ref(false)
  const error = ref<string | null>(null)
  const live = useLive()
  let timer: ReturnType<typeof setTimeout> | null = null
  let poll: ReturnType<typeof setInterval> | null = null
  const offs: (() => void)[] = []
  let running = false
  let again = false

  async function reload(): Promise<void> {
    if (running) {
      again = true
      return
    }
    running = true
    loading.value = data.value === null
    try {
      data.value = (await load()) as never
      error.value = null
    } catch (failure) {
      error.value = messageOf(failure)
    } finally {
      running = false
      loading.value = false
    }
    if (again) {
      again = false
      void reload()
    }
  }

  function soon(): void {
    if (timer) return
    timer = setTimeout(() => {
      timer = null
      void reload()
    }, options.delay ?? 300)
  }

  onMounted(() => {
    for (const kind of options.kinds ?? []) offs.push(live.on(kind, soon))
    if (options.pollMs) poll = setInterval(() => void reload(), options.pollMs)
    void reload()
  })
  onUnmounted(() => {
    offs.forEach((off) => off())
    if (timer) clearTimeout(timer)
    if (poll) clearInterval(poll)
  })

  return { data, loading, error, reload, soon }
}
