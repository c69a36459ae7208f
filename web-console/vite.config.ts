import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'

// The build lands in the Python package, which serves it at "/" (agentvisor/admin/console.py).
const outDir = fileURLToPath(new URL('../agentvisor/admin/static', import.meta.url))

export default defineConfig({
  plugins: [
    vue(),
    // Element Plus components (and their CSS) imported where used: a smaller first load.
    Components({ resolvers: [ElementPlusResolver({ importStyle: 'css' })], dts: false }),
  ],
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: 'assets',
    modulePreload: { polyfill: false }, // the polyfill is an inline script; CSP forbids those
    chunkSizeWarningLimit: 1200,
  },
  server: {
    // `npm run dev` against a daemon on the default admin address.
    proxy: { '/api': 'http://127.0.0.1:8080', '/openapi.json': 'http://127.0.0.1:8080' },
  },
})
