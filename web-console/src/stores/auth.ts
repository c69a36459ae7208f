// The bearer token, kept for this tab only (session storage), and whether the API wants one.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { configureAuth } from '../api/client'

const KEY = 'agentvisor.token'

export const useAuth = defineStore('auth', () => {
  const token = ref<string | null>(sessionStorage.getItem(KEY))
  /** Set by a 401: the console shows the login field until a token works. */
  const needed = ref(false)

  function setToken(value: string | null): void {
    token.value = value && value.trim() ? value.trim() : null
    if (token.value) sessionStorage.setItem(KEY, token.value)
    else sessionStorage.removeItem(KEY)
    needed.value = false
  }

  configureAuth({
    token: () => token.value,
    unauthorized: () => {
      needed.value = true
    },
  })

  return { token, needed, setToken }
})
