import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'

export default defineConfig({
  // Element Plus resolved as in the build (vite.config.ts), without its CSS.
  plugins: [vue(), Components({ resolvers: [ElementPlusResolver({ importStyle: false })], dts: false })],
  test: {
    environment: 'happy-dom',
    environmentOptions: { happyDOM: { url: 'http://127.0.0.1:8080/' } },
    include: ['tests/unit/**/*.test.ts'],
    setupFiles: ['tests/unit/fakeFetch.ts'],
  },
})
