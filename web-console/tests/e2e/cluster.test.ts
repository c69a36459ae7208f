// The Cluster view against a real `agentvisor run` in a cluster and a real redis-server
// (Debian's package), in headless Chromium: the node listed up with its instances,
// then Redis SIGKILLed and the view saying so while the node keeps serving.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { afterAll, beforeAll, expect, test } from 'vitest'
import type { Browser, Page } from 'playwright-core'
import { TOKEN, WIDTHS, apiGet, eventually, launchBrowser, shoot, startDaemon, type Daemon } from './harness'

let redis: ChildProcess
let daemon: Daemon
let browser: Browser
let page: Page

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer()
    server.once('error', fail)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => done(port))
    })
  })
}

beforeAll(async () => {
  const port = await freePort()
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  daemon = await startDaemon(`
[cluster]
redis_url = "redis://127.0.0.1:${port}/0"
node_name = "console-node"
advertise_host = "127.0.0.1"
heartbeat_interval = 0.5
`)
  await eventually(async () => (await apiGet(daemon, '/api/v1/cluster/nodes')).nodes.length === 1, 'the node in Redis')
  browser = await launchBrowser()
  const context = await browser.newContext({ viewport: WIDTHS.desktop })
  await context.addInitScript((token) => sessionStorage.setItem('agentvisor.token', token), TOKEN)
  page = await context.newPage()
  page.setDefaultTimeout(20_000)
})

afterAll(async () => {
  await browser?.close()
  await daemon?.stop()
  if (redis && redis.exitCode === null) redis.kill('SIGKILL')
})

test('the Cluster page lists the node and its instances, then says Redis is unreachable', async () => {
  await page.goto(`${daemon.url}/dashboard`)
  await page.locator('nav').getByRole('link', { name: 'Cluster' }).click()
  const node = page.locator('[data-test="node-console-node"]')
  await node.waitFor()
  expect(await node.locator('[data-test="node-state"]').textContent()).toBe('up')
  await eventually(async () => (await node.locator('[data-test="instances-console-node"]').textContent())?.includes('echo:0'), 'echo:0 listed')
  expect(await node.textContent()).toContain('this node')
  await shoot(page, 'cluster-desktop')

  redis.kill('SIGKILL')
  const alert = page.locator('[data-test="redis-unreachable"]')
  await alert.waitFor()
  expect(await alert.textContent()).toContain('is unreachable')
  expect((await apiGet(daemon, '/api/v1/services/echo')).state).toBe('running') // still serving
})
