import { describe, expect, test } from 'vitest'
import { readFileSync } from 'node:fs'
import openapiTS, { astToString } from 'openapi-typescript'
import { ApiError } from '../../src/api/client'
import { parseSse } from '../../src/api/stream'
import { fieldErrors } from '../../src/lib/configErrors'
import { highlight } from '../../src/lib/highlight'
import { mergePatch, rowsOf } from '../../src/lib/settings'

describe('parseSse', () => {
  test('splits messages, skips comments, keeps the incomplete rest', () => {
    const { events, retry, rest } = parseSse('retry: 3000\n: ready\n\nevent: instance.state\ndata: {"service":"a"}\n\nevent: log.li')
    expect(retry).toBe(3000)
    expect(events).toEqual([{ kind: 'instance.state', data: { service: 'a' } }])
    expect(rest).toBe('event: log.li')
  })
})

describe('fieldErrors', () => {
  test('puts each CONFIG_INVALID problem under the key it names', () => {
    const error = new ApiError(422, 'CONFIG_INVALID', 'invalid config', {
      errors: ['/x/agentvisor.toml:12:1 agents.web.replicas: must be >= 0', '<config> routes[0].name: missing'],
    })
    expect(fieldErrors(error, 'web', ['replicas'])).toEqual({ replicas: 'must be >= 0', '': '<config> routes[0].name: missing' })
  })
})

describe('mergePatch', () => {
  test('sends only changed keys, null for removed ones, typed as they were', () => {
    const original = { replicas: 1, tags: ['a'], autostart: true, description: 'x' }
    const rows = rowsOf(original).filter((r) => r.key !== 'description')
    rows[0].text = '3'
    expect(mergePatch(original, rows)).toEqual({ replicas: 3, description: null })
  })
})

test('highlight cuts a line at the search hits', () => {
  expect(highlight('hello world', [[6, 11]])).toEqual([{ text: 'hello ', hit: false }, { text: 'world', hit: true }])
})

test('src/api/schema.d.ts is what openapi-typescript makes of openapi.json (npm run openapi)', async () => {
  const document = JSON.parse(readFileSync('openapi.json', 'utf8'))
  const generated = astToString(await openapiTS(document))
  const committed = readFileSync('src/api/schema.d.ts', 'utf8')
  const strip = (text: string) => text.replace(/^\/\*\*[\s\S]*?\*\/\s*/, '').trim()
  expect(strip(committed)).toBe(strip(generated))
})
