// Key components mounted with Element Plus, the API faked at fetch: why an agent is
// fatal, inline config errors, confirmations, and the empty / loading / error states.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import { answer, json, seen } from './fakeFetch'
import type { Instance, ServiceDetail, ServiceItem } from '../../src/api/client'
import ConfigEditor from '../../src/components/ConfigEditor.vue'
import FailureNote from '../../src/components/FailureNote.vue'
import PageState from '../../src/components/PageState.vue'
import ServiceActions from '../../src/components/ServiceActions.vue'

function instance(overrides: Partial<Instance>): Instance {
  return {
    cpu_percent: null, endpoint: null, exit_code: null, exit_reason: '', failures: 0,
    health: { consecutive_failures: 0, last_check: null } as unknown as Instance['health'],
    host: '127.0.0.1', memory_bytes: null, memory_mb: null, next_retry_at: null, pid: null, port: null,
    reason: '', replica: 0, restarts: 0, sessions: null, started_at: null, state: 'running', stderr_tail: [],
    uptime_seconds: null, ...overrides,
  }
}

function service(name: string, instances: Instance[], state = 'fatal'): ServiceDetail {
  return { name, state, instances, replicas: { desired: instances.length, running: 0 } } as unknown as ServiceDetail
}

beforeEach(() => {
  setActivePinia(createPinia())
  document.body.innerHTML = ''
})
afterEach(() => {
  document.body.innerHTML = ''
})

describe('FailureNote', () => {
  test('a fatal agent shows its last exit, the reason and its stderr tail', async () => {
    answer(() => json(500, {}))
    const wrapper = mount(FailureNote, {
      props: {
        service: service('weather', [
          instance({
            state: 'fatal', exit_code: 2, failures: 3, reason: 'exited too quickly 3 times',
            exit_reason: 'exit status 2: SyntaxError: invalid syntax',
            stderr_tail: ['Traceback (most recent call last):', 'SyntaxError: invalid syntax'],
          }),
        ]),
      },
    })
    await flushPromises()
    const text = wrapper.get('[data-test="failure-note"]').text()
    expect(text).toContain('weather is fatal')
    expect(text).toContain('Replica 0: fatal')
    expect(text).toContain('exit status 2: SyntaxError: invalid syntax')
    expect(text).toContain('last exit code 2')
    expect(text).toContain('exited too quickly 3 times')
    expect(wrapper.get('pre').text()).toBe('Traceback (most recent call last):\nSyntaxError: invalid syntax')
    expect(seen).toHaveLength(0) // the tail came with the instance: no log query
  })

  test('without a stderr tail it fetches the last stderr lines from the logs', async () => {
    answer(() => json(200, { success: true, data: { lines: [{ instance: 'calc-0', text: 'ImportError: no module named x' }] } }))
    const wrapper = mount(FailureNote, {
      props: { service: service('calc', [instance({ state: 'backoff', exit_code: 1, failures: 1 })], 'backoff') },
    })
    await flushPromises()
    const url = new URL(seen[0].url)
    expect(url.pathname).toBe('/api/v1/logs/services/calc')
    expect(url.searchParams.get('stream')).toBe('stderr')
    expect(wrapper.get('[data-test="failure-stderr"]').text()).toContain('[calc-0] ImportError: no module named x')
  })

  test('a running agent shows no note', () => {
    const wrapper = mount(FailureNote, { props: { service: service('echo', [instance({})], 'running') } })
    expect(wrapper.find('[data-test="failure-note"]').exists()).toBe(false)
  })
})

describe('ConfigEditor', () => {
  test('a live reload of the service keeps what the operator is typing', async () => {
    const wrapper = mount(ConfigEditor, { props: { name: 'web', config: { replicas: 1, description: 'x' } } })
    await wrapper.setProps({ config: { replicas: 2, description: 'x' } }) // scaled elsewhere: shown
    expect((wrapper.get('[data-test="field-replicas"] input').element as HTMLInputElement).value).toBe('2')
    await wrapper.get('[data-test="field-replicas"] input').setValue('-1')
    await wrapper.setProps({ config: { replicas: 2, description: 'x' } }) // the same, reloaded
    await wrapper.setProps({ config: { replicas: 2, description: 'y' } }) // changed elsewhere
    expect((wrapper.get('[data-test="field-replicas"] input').element as HTMLInputElement).value).toBe('-1')
  })

  test('a CONFIG_INVALID answer shows each problem at its field and the rest on top', async () => {
    answer(() =>
      json(422, {
        success: false,
        error: {
          code: 'CONFIG_INVALID',
          message: 'the edited configuration is invalid',
          details: { errors: ['/etc/agentvisor.toml:12:1 agents.web.replicas: must be >= 0', '<config> routes[0].service: unknown agent'] },
        },
      }),
    )
    const wrapper = mount(ConfigEditor, { props: { name: 'web', config: { replicas: 1, description: 'x' } } })
    await wrapper.get('[data-test="field-replicas"] input').setValue('-1')
    await wrapper.get('[data-test="config-save"]').trigger('click')
    await flushPromises()
    const request = seen[0]
    expect(request.method).toBe('PUT')
    expect(new URL(request.url).pathname).toBe('/api/v1/services/web/config')
    expect(await request.json()).toEqual({ config: { replicas: -1 } })
    // Element Plus shows a form item's error after a short debounce
    await vi.waitFor(() => expect(wrapper.get('[data-test="field-replicas"] .el-form-item__error').text()).toBe('must be >= 0'))
    expect(wrapper.find('[data-test="field-description"] .el-form-item__error').exists()).toBe(false)
    expect(wrapper.get('[data-test="config-error"]').text()).toContain('routes[0].service: unknown agent')
    expect(wrapper.get('[data-test="config-result"]').text()).toBe('')
    expect(wrapper.emitted('saved')).toBeUndefined()
  })

  test('saving nothing changed sends nothing', async () => {
    answer(() => json(500, {}))
    const wrapper = mount(ConfigEditor, { props: { name: 'web', config: { replicas: 1 } } })
    await wrapper.get('[data-test="config-save"]').trigger('click')
    await flushPromises()
    expect(seen).toHaveLength(0)
    expect(wrapper.get('[data-test="config-result"]').text()).toBe('Nothing changed.')
  })
})

describe('ServiceActions', () => {
  const item = { name: 'echo', replicas: { desired: 1, running: 1 } } as unknown as ServiceItem
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/:p(.*)*', component: { template: '<div/>' } }] })

  async function confirmBox(): Promise<HTMLElement> {
    await vi.waitFor(() => expect(document.querySelector('.el-message-box')).not.toBeNull())
    return document.querySelector('.el-message-box') as HTMLElement
  }

  test('stop asks first; cancelling sends nothing', async () => {
    answer(() => json(200, { success: true, data: {} }))
    const wrapper = mount(ServiceActions, { props: { service: item }, global: { plugins: [router] }, attachTo: document.body })
    await wrapper.get('[data-test="stop"]').trigger('click')
    const box = await confirmBox()
    expect(box.textContent).toContain('Stop echo? Its clients are disconnected.')
    ;(Array.from(box.querySelectorAll('button')).find((b) => b.textContent?.includes('Cancel')) as HTMLElement).click()
    await vi.waitFor(() => expect(wrapper.emitted('changed')).toHaveLength(1))
    expect(seen).toHaveLength(0)
    wrapper.unmount()
  })

  test('a confirmed restart calls the API and shows its message when it fails', async () => {
    answer(() => json(409, { success: false, error: { code: 'CONFLICT', message: "echo is stopping; try again when it has stopped" } }))
    const wrapper = mount(ServiceActions, { props: { service: item }, global: { plugins: [router] }, attachTo: document.body })
    await wrapper.get('[data-test="restart"]').trigger('click')
    const box = await confirmBox()
    ;(Array.from(box.querySelectorAll('button')).find((b) => b.textContent?.includes('Yes')) as HTMLElement).click()
    await vi.waitFor(() => expect(seen).toHaveLength(1))
    expect(seen[0].method).toBe('POST')
    expect(new URL(seen[0].url).pathname).toBe('/api/v1/services/echo/restart')
    await vi.waitFor(() => expect(document.querySelector('.el-message--error')?.textContent).toContain('echo is stopping; try again'))
    await vi.waitFor(() => expect(wrapper.emitted('changed')).toHaveLength(1))
    wrapper.unmount()
  })
})

describe('PageState', () => {
  const slots = { default: '<p data-test="content">rows</p>' }

  test('shows the error with a retry, before loading or content', async () => {
    const wrapper = mount(PageState, { props: { error: 'agentvisor did not answer', loading: true }, slots })
    expect(wrapper.get('[data-test="page-error"]').text()).toContain('agentvisor did not answer')
    expect(wrapper.find('[data-test="content"]').exists()).toBe(false)
    await wrapper.get('[data-test="page-error"] button').trigger('click')
    expect(wrapper.emitted('retry')).toHaveLength(1)
  })

  test('loading shows a skeleton, empty its text, otherwise the content', async () => {
    const wrapper = mount(PageState, { props: { loading: true }, slots })
    expect(wrapper.find('.el-skeleton').exists()).toBe(true)
    await wrapper.setProps({ loading: false, empty: true, emptyText: 'No connections' })
    expect(wrapper.text()).toContain('No connections')
    await wrapper.setProps({ empty: false })
    expect(wrapper.get('[data-test="content"]').text()).toBe('rows')
  })
})
