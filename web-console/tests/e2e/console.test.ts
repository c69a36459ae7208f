// The console's flows against a real `agentvisor run`, in headless Chromium.
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { ROOT, TOKEN, WIDTHS, apiGet, eventually, launchBrowser, shoot, startDaemon, type Daemon } from './harness'

let daemon: Daemon
let browser: Browser
let context: BrowserContext
let page: Page

beforeAll(async () => {
  daemon = await startDaemon()
  browser = await launchBrowser()
  context = await browser.newContext({ viewport: WIDTHS.desktop })
  page = await context.newPage()
  page.setDefaultTimeout(20_000)
})

afterAll(async () => {
  await browser?.close()
  await daemon?.stop()
})

/** Click the confirm dialog's "Yes" (Element Plus message box). */
async function confirm(): Promise<void> {
  await page.locator('.el-message-box').getByRole('button', { name: /Yes|Disconnect/ }).click()
}

async function serviceState(name: string): Promise<string> {
  return (await apiGet(daemon, `/api/v1/services/${name}`)).state
}

describe('the console', () => {
  test('asks for the token, and every call carries it', async () => {
    await page.goto(`${daemon.url}/dashboard`)
    const dialog = page.locator('.el-dialog', { hasText: 'Log in to agentvisor' })
    await dialog.waitFor()
    await shoot(page, 'login-desktop')
    await page.locator('[data-test=token]').fill('wrong')
    await page.locator('[data-test=login]').click()
    await expect.poll(() => dialog.textContent()).toContain('wrong bearer token')
    await page.locator('[data-test=token]').fill(TOKEN)
    await page.locator('[data-test=login]').click()
    await page.locator('[data-test=card-agents]').waitFor()
    await expect.poll(() => page.locator('[data-test=live-status]').textContent()).toContain('live')
    expect(await page.evaluate(() => sessionStorage.getItem('agentvisor.token'))).toBe(TOKEN)
  })

  test('registers an agent and watches it start', async () => {
    await page.goto(`${daemon.url}/services`)
    await page.locator('[data-test=register]').click()
    await page.locator('[data-test=reg-name]').fill('greeter')
    await page.locator('[data-test=reg-agent]').fill(join(ROOT, 'examples/echo_agent.py'))
    await page.locator('[data-test=reg-submit]').click()
    await page.waitForURL('**/services/greeter')
    // The page follows the agent from starting to running without a reload.
    await page.locator('[data-test=service-state][data-state=running]').waitFor()
    expect(await serviceState('greeter')).toBe('running')
  })

  test('restarts and scales it', async () => {
    const before = (await apiGet(daemon, '/api/v1/services/greeter/instances')).instances[0]
    await page.locator('[data-test=restart]').click()
    await confirm()
    await page.locator('.el-message--success', { hasText: 'restart done' }).waitFor()
    const after = (await apiGet(daemon, '/api/v1/services/greeter/instances')).instances[0]
    expect(after.pid).not.toBe(before.pid)

    await page.locator('[data-test=scale]').click()
    await page.locator('[data-test=replicas] input').fill('2')
    await page.locator('[data-test=scale-apply]').click()
    await confirm()
    await eventually(async () => (await page.locator('[data-test=instances-table] tbody tr').count()) === 2, 'two instance rows')
    await eventually(async () => (await apiGet(daemon, '/api/v1/services/greeter')).replicas.running === 2, 'two replicas running')
  })

  test('an invalid config edit shows the error at the field and changes nothing', async () => {
    const before = (await apiGet(daemon, '/api/v1/services/greeter')).config
    await page.getByRole('tab', { name: 'Config' }).click()
    const field = page.locator('[data-test=field-replicas]')
    await field.locator('input').fill('-1')
    await page.locator('[data-test=config-save]').click()
    await expect.poll(() => field.locator('.el-form-item__error').textContent()).toMatch(/replicas|0|negative|least/i)
    await shoot(page, 'config-invalid-desktop')
    expect((await apiGet(daemon, '/api/v1/services/greeter')).config).toEqual(before)
  })

  test('tails logs live with the stream filter', async () => {
    await page.goto(`${daemon.url}/services/echo`)
    await page.getByRole('tab', { name: 'Logs' }).click()
    const tail = page.locator('[data-test=log-tail]')
    await expect.poll(() => tail.textContent()).toContain('listening on')
    // A connection makes the worker print a line, which arrives over the event stream.
    const client = await context.newPage()
    await client.evaluate((url) => new Promise((done, fail) => {
      const ws = new WebSocket(url)
      ;(window as unknown as { ws: WebSocket }).ws = ws
      ws.onopen = () => done(null)
      ws.onerror = () => fail(new Error('websocket failed'))
    }), `${daemon.routerUrl}?service=echo`)
    await expect.poll(() => tail.textContent()).toContain('connection from')
    await page.locator('[data-test=log-stream]').getByText('stderr').click()
    await expect.poll(() => tail.textContent()).not.toContain('connection from')
    await page.locator('[data-test=log-stream]').getByText('all').click()

    // The connection shows on the Connections page, and is disconnected from there.
    const closed = client.evaluate(() => new Promise<string>((done) => {
      (window as unknown as { ws: WebSocket }).ws.onclose = (event) => done(`${event.code} ${event.reason}`)
    }))
    await page.goto(`${daemon.url}/connections`)
    const rows = page.locator('[data-test=connections-table] tbody tr')
    await eventually(async () => (await rows.count()) === 1, 'the live connection listed')
    await shoot(page, 'connections-live-desktop')
    await rows.first().locator('[data-test=disconnect]').click()
    await page.locator('.el-message-box input').fill('maintenance window')
    await confirm()
    expect(await closed).toContain('maintenance window')
    await eventually(async () => (await page.locator('[data-test=connections-table]').count()) === 0, 'the connection gone')
    await client.close()
  })

  test('creates a rule and tests a client against it', async () => {
    await page.goto(`${daemon.url}/routing`)
    await page.locator('[data-test=rule-new]').click()
    await page.locator('[data-test=rule-name]').fill('math-clients')
    await page.locator('[data-test=rule-priority] input').fill('10')
    await page.locator('[data-test=cond-add]').click()
    await page.locator('[data-test=cond-field]').fill('header.x-client-kind')
    await page.locator('[data-test=cond-value]').fill('math')
    await page.locator('[data-test=rule-agents]').click()
    await page.locator('.el-select-dropdown__item', { hasText: 'greeter' }).click()
    await page.keyboard.press('Escape')
    await page.locator('[data-test=rule-save]').click()
    await page.locator('[data-test=rules-table]', { hasText: 'math-clients' }).waitFor()
    const rules = (await apiGet(daemon, '/api/v1/routing/rules')).rules
    expect(rules.map((r: { name: string }) => r.name)).toContain('math-clients')

    await page.locator('[data-test=test-headers]').fill('x-client-kind: math')
    await page.locator('[data-test=test-run]').click()
    const result = page.locator('[data-test=test-result]')
    await expect.poll(() => result.textContent()).toContain('math-clients')
    expect(await result.textContent()).toContain('greeter')
    await shoot(page, 'routing-tested-desktop')
  })

  test('searches the stored logs', async () => {
    await page.goto(`${daemon.url}/logs`)
    await page.locator('[data-test=log-query]').fill('listening')
    await page.locator('[data-test=log-search]').click()
    await expect.poll(() => page.locator('[data-test=log-hits]').textContent()).toContain('listening')
    expect(await page.locator('[data-test=log-hits] mark').count()).toBeGreaterThan(0)
  })

  test('every page fits at 1280x800 and at 390 px, screenshots saved', async () => {
    const pages = ['dashboard', 'services', 'services/greeter', 'connections', 'routing', 'logs', 'events']
    for (const [width, viewport] of Object.entries(WIDTHS)) {
      await page.setViewportSize(viewport)
      for (const path of pages) {
        await page.goto(`${daemon.url}/${path}`)
        await page.locator('.page h1').first().waitFor()
        await shoot(page, `${path.replace('/', '-')}-${width}`)
      }
    }
  })
})
