const CLIENT_ID_KEY = '_driftdb_client_id'
let memoryId: string | null = null

function randomId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto
  if (c?.randomUUID) return c.randomUUID()
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`
}

/**
 * A random client ID for the current client, kept in session storage (`_driftdb_client_id`) so that it survives
 * page reloads. Without session storage (Node), one ID per process.
 */
export function uniqueClientId(): string {
  const storage = (globalThis as { sessionStorage?: Storage }).sessionStorage
  if (storage) {
    const existing = storage.getItem(CLIENT_ID_KEY)
    if (existing) return existing
    const id = randomId()
    storage.setItem(CLIENT_ID_KEY, id)
    return id
  }
  memoryId ??= randomId()
  return memoryId
}
