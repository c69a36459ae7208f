// A real `agentvisor run` (admin and router on port 0, a temp state dir, the
// example agents) and headless Debian Chromium driven by playwright-core.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'

export const ROOT = resolve(__dirname, '../../..')
export const ARTIFACTS = resolve(__dirname, '../../test-results')
const BIN = process.env.AGENTVISOR_BIN ?? join(ROOT, '.venv/bin/agentvisor')
export const TOKEN = 'console-e2e-token'

export type Daemon = { url: string; routerUrl: string; dir: string; config: string; process: ChildProcess; output: string[]; stop: () => Promise<void> }

export function configText(dir: string, extra = ''): string {
  const examples = join(ROOT, 'examples')
  return `
[supervisor]
state_dir = "${join(dir, 'state')}"
sample_interval = 1
port_range = [41000, 48999]

[admin]
bind = ["127.0.0.1:0"]
token = "${TOKEN}"

[router]
bind = ["127.0.0.1:0"]
path = "/ws"

[agents.echo]
command = ${JSON.stringify(`python3 ${join(examples, 'ws_echo_server.py')} --port {port}`)}
description = "Echoes every message"
tags = ["demo"]
startsecs = 0.2

[agents.echo.health]
mode = "websocket"
interval = 2
timeout = 2

[[routes]]
name = "blocked-bots"
priority = 100
match = [{ field = "user_agent", op = "contains", value = "badbot" }]
action = "reject"
${extra}`
}

/** `extra` is appended to the config (a `[cluster]` table, say). */
export async function startDaemon(extra = ''): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'agentvisor-console-'))
  mkdirSync(join(dir, 'state'))
  const config = join(dir, 'agentvisor.toml')
  writeFileSync(config, configText(dir, extra))
  const child = spawn(BIN, ['run', '-c', config], {
    cwd: ROOT,
    env: { ...process.env, PATH: `${join(ROOT, '.venv/bin')}:${process.env.PATH}`, AGENTVISOR_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  const ready = new Promise<{ admin: string; router: string }>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`agentvisor did not start in 30 s:\n${output.join('')}`)), 30_000)
    const read = (chunk: Buffer) => {
      output.push(chunk.toString())
      const text = output.join('')
      const match = /router on (\S+); admin API on (\S+)/.exec(text)
      if (match) {
        clearTimeout(timer)
        done({ router: match[1].replace(/,$/, ''), admin: match[2].replace(/,$/, '') })
      }
    }
    child.stdout!.on('data', read)
    child.stderr!.on('data', read)
    child.on('exit', (code) => fail(new Error(`agentvisor exited (${code}):\n${output.join('')}`)))
  })
  const binds = await ready
  const hostPort = (bind: string) => bind.replace(/^[a-z]+:\/\//, '')
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((done) => child.once('exit', done))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  return { url: `http://${hostPort(binds.admin)}`, routerUrl: `ws://${hostPort(binds.router)}/ws`, dir, config, process: child, output, stop }
}

export async function launchBrowser(): Promise<Browser> {
  // playwright starts Chromium on a new empty profile of its own (--user-data-dir in a temp dir)
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  })
}

export const WIDTHS = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } } as const

/** A screenshot artifact, and a check that the page does not scroll sideways. */
export async function shoot(page: Page, name: string): Promise<void> {
  // no 'networkidle': the live event stream stays open. Charts animate in for ~1 s.
  await page.waitForTimeout(1000)
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
  if (overflow > 1) throw new Error(`${name}: the page scrolls sideways by ${overflow}px`)
}

/** Poll `check` until it returns a truthy value (a fact in another process), bounded. */
export async function eventually<T>(check: () => Promise<T | null | undefined | false>, what: string, timeout = 20_000): Promise<T> {
  const deadline = Date.now() + timeout
  for (;;) {
    const value = await check().catch(() => null)
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await new Promise((done) => setTimeout(done, 100))
  }
}

export async function apiGet(daemon: Daemon, path: string): Promise<any> {
  const response = await fetch(`${daemon.url}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } })
  const body = await response.json()
  if (!body.success) throw new Error(`${path}: ${JSON.stringify(body)}`)
  return body.data
}
