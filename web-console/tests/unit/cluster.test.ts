// The Cluster view against the API faked at fetch: nodes up and down with their
// instances, Redis unreachable, and a node without [cluster].
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { answer, json, seen } from './fakeFetch'
import type { Schemas } from '../../src/api/client'
import ClusterView from '../../src/views/ClusterView.vue'

type Cluster = Schemas['Cluster']
type ClusterNode = Schemas['ClusterNode']

function node(name: string, overrides: Partial<ClusterNode> = {}): ClusterNode {
  return {
    name, state: 'up', self: false, heartbeat_age: 0.4, version: '0.1.0', pid: 10, started_at: null,
    router: [`ws://127.0.0.1:9090`], admin: [],
    agents: [{ name: 'chat', kind: 'agent', state: 'running', desired: 1, running: 1, description: '', tags: [] }],
    instances: [{
      id: 'chat:0', agent: 'chat', replica: 0, host: '10.0.0.11', port: 8100, ws_path: '/', state: 'running',
      health: 'healthy', routable: true, draining: false, weight: 1, max_sessions: 0, sessions: 3, connections: 2,
      tags: [], pid: 11, cpu_percent: null, memory_bytes: null,
    }],
    ...overrides,
  }
}

function listing(overrides: Partial<Cluster> = {}): Cluster {
  return {
    node: 'a', node_timeout: 5,
    redis: { target: 'redis://10.0.0.5:6379/0', reachable: true, last_error: null, read_age: 0.2 },
    nodes: [node('a', { self: true }), node('b', { state: 'down', heartbeat_age: 41, instances: [] })],
    ...overrides,
  }
}

beforeEach(() => {
  setActivePinia(createPinia())
})
afterEach(() => {
  document.body.innerHTML = ''
})

describe('ClusterView', () => {
  test('lists every node with its state, heartbeat, version and instances', async () => {
    answer(() => json(200, { success: true, data: listing() }))
    const wrapper = mount(ClusterView)
    await vi.waitFor(() => expect(wrapper.find('[data-test="node-a"]').exists()).toBe(true))
    expect(new URL(seen[0].url).pathname).toBe('/api/v1/cluster/nodes')
    expect(wrapper.get('[data-test="cluster-summary"]').text()).toContain('1 of 2 nodes up')
    const a = wrapper.get('[data-test="node-a"]')
    expect(a.text()).toContain('this node')
    expect(a.get('[data-test="node-state"]').text()).toBe('up')
    expect(a.text()).toContain('version 0.1.0')
    expect(a.get('[data-test="instances-a"]').text()).toContain('10.0.0.11:8100')
    expect(a.get('[data-test="instances-a"]').text()).toContain('healthy')
    const b = wrapper.get('[data-test="node-b"]')
    expect(b.get('[data-test="node-state"]').text()).toBe('down')
    expect(b.text()).toContain('heartbeat 41s ago')
    expect(wrapper.find('[data-test="redis-unreachable"]').exists()).toBe(false)
    wrapper.unmount()
  })

  test('Redis unreachable is said at the top, and no node yet is an empty state', async () => {
    const redis = { target: 'redis://10.0.0.5:6379/0', reachable: false, last_error: 'Connection refused.', read_age: null }
    answer(() => json(200, { success: true, data: listing({ redis, nodes: [] }) }))
    const wrapper = mount(ClusterView)
    await vi.waitFor(() => expect(wrapper.find('[data-test="redis-unreachable"]').exists()).toBe(true))
    expect(wrapper.get('[data-test="redis-unreachable"]').text()).toContain('Redis at redis://10.0.0.5:6379/0 is unreachable: Connection refused.')
    expect(wrapper.text()).toContain('No node has published itself in Redis yet')
    wrapper.unmount()
  })

  test('a node without [cluster] shows the API error', async () => {
    const error = { code: 'CLUSTER_NOT_CONFIGURED', message: 'this agentvisor is not part of a cluster' }
    answer(() => json(404, { success: false, error }))
    const wrapper = mount(ClusterView)
    await flushPromises()
    await vi.waitFor(() => expect(wrapper.find('[data-test="page-error"]').exists()).toBe(true))
    expect(wrapper.get('[data-test="page-error"]').text()).toContain('not part of a cluster')
    wrapper.unmount()
  })
})
