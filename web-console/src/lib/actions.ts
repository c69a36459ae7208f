// Operator actions: optional confirmation, progress while they run, the API's message on failure.
import { ref } from 'vue'
import { ElMessage, ElMessageBox } from 'element-plus'
import { messageOf } from '../api/client'

/** Which actions are running now, by key (buttons show their spinner from it). */
export const busy = ref<Record<string, boolean>>({})

export async function act<T>(
  key: string,
  run: () => Promise<T>,
  options: { confirm?: string; done?: string } = {},
): Promise<T | undefined> {
  if (options.confirm) {
    try {
      await ElMessageBox.confirm(options.confirm, 'Please confirm', {
        confirmButtonText: 'Yes',
        cancelButtonText: 'Cancel',
        type: 'warning',
      })
    } catch {
      return undefined // cancelled
    }
  }
  busy.value = { ...busy.value, [key]: true }
  try {
    const result = await run()
    if (options.done) ElMessage({ type: 'success', message: options.done, grouping: true })
    return result
  } catch (error) {
    ElMessage({ type: 'error', message: messageOf(error), duration: 8000, showClose: true })
    throw error
  } finally {
    const next = { ...busy.value }
    delete next[key]
    busy.value = next
  }
}
