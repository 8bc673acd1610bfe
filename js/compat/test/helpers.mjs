// Shared helpers for the compatibility tests.
//
// The published `driftdb` client is written for browsers. This module installs the few browser globals
// it relies on *before* loading it, and re-exports it, so test files import the client from here.

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { WebSocket } from 'ws'
import { startServer } from '../../test-support/server.mjs'
import { MemoryStorage } from '../../test-support/storage.mjs'
import { eventually, sleep, waitFor } from '../../test-support/wait.mjs'

// --- Browser globals used by the reference client -----------------------------------------------
// DbConnection uses the global WebSocket (with binaryType 'arraybuffer', which `ws` supports),
// StateListener calls window.setTimeout, and uniqueClientId() keeps its id in sessionStorage.
globalThis.WebSocket = WebSocket
globalThis.window = globalThis
globalThis.sessionStorage = new MemoryStorage()

// Loaded dynamically so that it is evaluated after the globals above exist.
const reference = (await import('driftdb-reference')).default
export const { Api, DbConnection, HttpConnection, PresenceListener, Reducer, StateListener, uniqueClientId } = reference

// --- Timing ------------------------------------------------------------------------------------------
export const WAIT_MS = 5_000
const TEST_TIMEOUT_MS = 30_000

// waitFor(check, {what, timeout}) and eventually(assertion, {what, timeout}) poll for WAIT_MS by default.
export { eventually, sleep, waitFor }

/** Resolves with `promise`'s result, or rejects if it takes more than `timeout` ms. */
export async function withTimeout(promise, what, timeout = WAIT_MS) {
  let timer
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

// --- Per-test resources ----------------------------------------------------------------------------

/**
 * Resources of one test: connections and listeners made through it are closed when the test ends,
 * and every message a connection receives is recorded.
 */
class TestScope {
  #listeners = []
  #connections = new Map() // DbConnection -> messages it received

  constructor(server) {
    this.server = server
    this.api = new Api(server.url)
  }

  newRoom() {
    return withTimeout(this.api.newRoom(), 'POST /new')
  }

  /** A DbConnection that is not connected yet (to attach listeners first), recording its messages. */
  newConnection() {
    const db = new DbConnection()
    const messages = []
    db.messageListener.addListener((message) => messages.push(message))
    this.#connections.set(db, messages)
    return db
  }

  /** A connected DbConnection; `cbor` is passed to connect() as an app would. */
  async connect(socketUrl, { cbor = false } = {}) {
    const db = this.newConnection()
    await withTimeout(db.connect(socketUrl, cbor), `WebSocket connection to ${socketUrl}`)
    return db
  }

  /** Every message `db` has received so far, decoded, in order. */
  messages(db) {
    return this.#connections.get(db)
  }

  /** Waits for the `init` reply for `key` on `db` and returns it. */
  waitForInit(db, key) {
    return waitFor(() => this.messages(db).find((m) => m.type === 'init' && m.key === key), {
      what: `init for key ${JSON.stringify(key)}`,
    })
  }

  /**
   * Subscribes `db` to `key` as an app would and records the `{seq, value}`s the client hands to the
   * callback in `values`. Resolves once the subscription's `init` has arrived (and been replayed).
   */
  async subscribe(db, key) {
    const received = { values: [] }
    db.subscribe(key, (sequenceValue) => received.values.push(sequenceValue))
    await this.waitForInit(db, key)
    return received
  }

  /** Registers a listener (StateListener, Reducer, PresenceListener) to destroy at the end of the test. */
  track(listener) {
    this.#listeners.push(listener)
    return listener
  }

  close() {
    for (const listener of this.#listeners) listener.destroy()
    for (const db of this.#connections.keys()) {
      // disconnect() does not cancel a reconnection already scheduled by an earlier close.
      clearTimeout(db.reconnectLoopHandle)
      db.disconnect()
    }
  }
}

/**
 * Starts one server for the calling test file (stopped after its last test) and returns `serverTest`,
 * a `test` whose body receives a TestScope. The server's log is printed when a test fails.
 */
export function useServer({ args = [] } = {}) {
  let server = null
  before(async () => {
    server = await startServer({ args })
  })
  after(async () => {
    await server?.stop()
  })

  return function serverTest(name, body) {
    test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const scope = new TestScope(server)
      try {
        await body(scope, t)
      } catch (error) {
        server?.printLogs(`server log for failed test "${name}"`)
        throw error
      } finally {
        scope.close()
      }
    })
  }
}

// --- Assertions ------------------------------------------------------------------------------------

/** Asserts that the seq numbers of `sequenceValues` strictly increase and are all positive integers. */
export function assertIncreasingSeqs(sequenceValues, what) {
  const seqs = sequenceValues.map((v) => v.seq)
  for (const seq of seqs) assert.ok(Number.isInteger(seq) && seq >= 1, `${what}: bad seq ${seq} in ${seqs}`)
  for (let i = 1; i < seqs.length; i++) {
    assert.ok(seqs[i] > seqs[i - 1], `${what}: seqs do not increase: ${seqs}`)
  }
}

/** `{seq, value}` of each entry, dropping any extra field, for comparisons. */
export const seqValues = (entries) => entries.map(({ seq, value }) => ({ seq, value }))

/** The given fields of a server message (servers may add fields of their own). */
export const pick = (message, ...fields) =>
  message == null ? message : Object.fromEntries(fields.map((field) => [field, message[field]]))

export { assert }
