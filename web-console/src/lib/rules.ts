// A rule as the form edits it, and back into the API's body.
import type { RoutingRule, RuleRequest } from '../api/client'
import type { Condition } from '../components/ConditionBuilder.vue'

export type RuleForm = {
  name: string; description: string; priority: number; enabled: boolean; action: 'route' | 'reject'
  target_agents: string[]; target_tags: string[]; target_strategy: string; conditions: Condition[]
}

export function emptyRule(): RuleForm {
  return { name: '', description: '', priority: 0, enabled: true, action: 'route', target_agents: [], target_tags: [], target_strategy: '', conditions: [] }
}

export function formOf(rule: RoutingRule): RuleForm {
  return {
    name: rule.name, description: rule.description, priority: rule.priority, enabled: rule.enabled, action: rule.action,
    target_agents: [...rule.target_agents], target_tags: [...rule.target_tags], target_strategy: rule.target_strategy ?? '',
    conditions: rule.conditions.map((c) => ({
      field: c.field, operator: c.operator, case_sensitive: c.case_sensitive,
      value: Array.isArray(c.value) ? (c.value as unknown[]).join(', ') : c.value === undefined || c.value === null ? '' : String(c.value),
    })),
  }
}

export function bodyOf(form: RuleForm): RuleRequest {
  const body: RuleRequest = {
    name: form.name.trim(), description: form.description, priority: form.priority, enabled: form.enabled, action: form.action,
    target_agents: form.target_agents, target_tags: form.target_tags,
    conditions: form.conditions.map((c) => {
      const list = c.operator === 'in' || c.operator === 'not_in'
      const value = list ? c.value.split(',').map((v) => v.trim()).filter(Boolean) : c.value
      return c.operator === 'exists'
        ? { field: c.field.trim(), operator: c.operator, case_sensitive: c.case_sensitive }
        : { field: c.field.trim(), operator: c.operator as never, value, case_sensitive: c.case_sensitive }
    }) as RuleRequest['conditions'],
  }
  if (form.target_strategy) body.target_strategy = form.target_strategy
  return body
}
