import { defineConfig } from 'vitest/config'

// The browser tests: a real `agentvisor run` and headless Chromium, one file at a time.
export default defineConfig({
  test: {
    environment: 'node',
    include: ['tests/e2e/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    sequence: { concurrent: false },
  },
})
