// Headless Chromium for bench/console_bench.py (playwright-core from web-console/node_modules).
//   node bench/console_browser.mjs load URL ROUNDS   -> one JSON line per first load (fresh profile)
//   node bench/console_browser.mjs hold URL PAGES SECONDS -> "open" once all pages show live data
import { createRequire } from 'node:module'

const require = createRequire(new URL('../web-console/package.json', import.meta.url))
const { chromium } = require('playwright-core')
const [mode, url, ...rest] = process.argv.slice(2)
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
})

/** Every response's bytes on the wire (headers + body as sent) and its decoded body size. */
async function firstLoad() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const page = await context.newPage()
  const cdp = await context.newCDPSession(page)
  await cdp.send('Network.enable')
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true })
  const finished = new Map()
  const encodings = new Map()
  cdp.on('Network.responseReceived', (e) => encodings.set(e.requestId, e.response.headers['content-encoding'] ?? e.response.headers['Content-Encoding'] ?? ''))
  cdp.on('Network.loadingFinished', (e) => finished.set(e.requestId, e.encodedDataLength))
  await page.goto(url, { waitUntil: 'load' })
  await page.waitForSelector('[data-test=dashboard-cards], .el-card', { timeout: 30_000 })
  // lazy chunks and the first API answers: wait until nothing new finished for 500 ms
  let count = -1
  while (count !== finished.size) {
    count = finished.size
    await page.waitForTimeout(500)
  }
  const fcp = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null)
  const resources = await page.evaluate(() => performance.getEntriesByType('resource').map((r) => ({ name: r.name, body: r.decodedBodySize })))
  const consoleFiles = resources.filter((r) => !r.name.includes('/api/'))
  const wire = [...finished.values()].reduce((a, b) => a + b, 0)
  await context.close()
  return {
    fcp_ms: fcp, wire_bytes: wire, requests: finished.size,
    console_files: consoleFiles.map((r) => new URL(r.name).pathname), decoded_bytes: consoleFiles.reduce((a, r) => a + r.body, 0),
    gzip_answers: [...encodings.values()].filter((v) => v.includes('gzip')).length,
  }
}

if (mode === 'load') {
  for (let i = 0; i < Number(rest[0] ?? 5); i++) console.log(JSON.stringify(await firstLoad()))
} else if (mode === 'hold') {
  const pages = []
  for (let i = 0; i < Number(rest[0] ?? 5); i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    const page = await context.newPage()
    await page.goto(url, { waitUntil: 'load' })
    await page.waitForSelector('.el-card', { timeout: 30_000 })
    pages.push(page)
  }
  console.log('open')
  await new Promise((done) => setTimeout(done, Number(rest[1] ?? 60) * 1000))
  const received = []
  for (const page of pages) received.push(await page.evaluate(() => document.body.innerText.length))
  console.log(JSON.stringify({ pages: pages.length, text_lengths: received }))
}
await browser.close()
