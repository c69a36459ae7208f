// What the admin API serves for the console: deep links, caching, CSP, the API untouched.
import { afterAll, beforeAll, expect, test } from 'vitest'
import { TOKEN, startDaemon, type Daemon } from './harness'

let daemon: Daemon
beforeAll(async () => {
  daemon = await startDaemon()
})
afterAll(async () => {
  await daemon?.stop()
})

test('deep links answer the page with a CSP that allows no inline script', async () => {
  for (const path of ['/', '/services/echo', '/routing']) {
    const response = await fetch(`${daemon.url}${path}`)
    expect(response.status).toBe(200)
    const csp = response.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("script-src 'self'")
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/)
    const html = await response.text()
    expect(html).toContain('<div id="app">')
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/) // every script is a file
  }
})

test('hashed assets are cached for a year, and unknown ones are 404', async () => {
  const html = await (await fetch(daemon.url)).text()
  const asset = /\/assets\/[^"]+\.js/.exec(html)![0]
  const response = await fetch(`${daemon.url}${asset}`)
  expect(response.status).toBe(200)
  expect(response.headers.get('cache-control')).toContain('max-age=31536000')
  expect(response.headers.get('content-type')).toContain('javascript')
  expect((await fetch(`${daemon.url}/assets/nothing-here.js`)).status).toBe(404)
  expect((await fetch(`${daemon.url}/assets/..%2f..%2fconsole.py`)).status).toBe(404)
})

test('the API, /docs and /metrics are unchanged and still need the token', async () => {
  expect((await fetch(`${daemon.url}/api/v1/info`)).status).toBe(401)
  expect((await fetch(`${daemon.url}/api/v1/nothing`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(404)
  const info = await fetch(`${daemon.url}/api/v1/info`, { headers: { Authorization: `Bearer ${TOKEN}` } })
  expect((await info.json()).success).toBe(true)
  expect((await fetch(`${daemon.url}/metrics`)).status).toBe(401)
  expect((await fetch(`${daemon.url}/docs`)).status).toBe(200)
})
