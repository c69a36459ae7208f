// The config editor's rows: one per key of the [agents.NAME] table, edited as text,
// turned back into a JSON merge patch of what changed (null removes a key).
export type Kind = 'string' | 'number' | 'boolean' | 'json'
export type Row = { key: string; kind: Kind; text: string; flag: boolean; isNew?: boolean }

export function kindOf(value: unknown): Kind {
  if (typeof value === 'number') return 'number'
  if (typeof value === 'boolean') return 'boolean'
  if (typeof value === 'string') return 'string'
  return 'json'
}

export function rowsOf(table: Record<string, unknown>): Row[] {
  return Object.entries(table).map(([key, value]) => {
    const kind = kindOf(value)
    return { key, kind, text: kind === 'json' ? JSON.stringify(value) : kind === 'boolean' ? '' : String(value), flag: value === true }
  })
}

/** The value a row stands for; a text that is not of its kind is sent as it is, for the API to judge. */
export function valueOf(row: Row): unknown {
  const text = row.text.trim()
  switch (row.kind) {
    case 'boolean':
      return row.flag
    case 'number':
      return text !== '' && Number.isFinite(Number(text)) ? Number(text) : text
    case 'json':
      try {
        return JSON.parse(text)
      } catch {
        throw new SyntaxError(`not valid JSON: ${text}`)
      }
    default:
      if (row.isNew) {
        try {
          return JSON.parse(text) // a new key: 5, true, ["a"] mean what they say
        } catch {
          return row.text
        }
      }
      return row.text
  }
}

/** Changed and new keys with their values, removed keys as null; "***" secrets left alone. */
export function mergePatch(original: Record<string, unknown>, rows: Row[]): Record<string, unknown> {
  const patch: Record<string, unknown> = {}
  const kept = new Set<string>()
  for (const row of rows) {
    if (!row.key.trim()) continue
    kept.add(row.key)
    const value = valueOf(row)
    if (JSON.stringify(value) !== JSON.stringify(original[row.key])) patch[row.key] = value
  }
  for (const key of Object.keys(original)) if (!kept.has(key)) patch[key] = null
  return patch
}
