// The browser's sessionStorage for Node test suites, whose clients keep their client id there.

/** Minimal in-memory Storage; clear() it to act as a new browser tab. */
export class MemoryStorage {
  #items = new Map()
  getItem(key) {
    return this.#items.has(key) ? this.#items.get(key) : null
  }
  setItem(key, value) {
    this.#items.set(key, String(value))
  }
  removeItem(key) {
    this.#items.delete(key)
  }
  clear() {
    this.#items.clear()
  }
}
