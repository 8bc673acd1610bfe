// Durable rooms with the published client: state, reducer and presence recover across a server restart on the same
// data directory and port, and connected clients carry on with no duplicate or missing entry.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { freePort, startServer } from '../../test-support/server.mjs'
import {
  Api,
  DbConnection,
  PresenceListener,
  Reducer,
  StateListener,
  assert,
  eventually,
  uniqueClientId,
  withTimeout,
} from './helpers.mjs'

// The reference client reconnects on its own, after a back-off of a few seconds.
const RECONNECT_MS = 15_000

const cleanups = []
after(() => {
  for (const cleanup of cleanups.reverse()) cleanup()
})

/** One browser tab: a connection with a StateListener, a counter Reducer and a PresenceListener. */
async function tab(socketUrl, name) {
  sessionStorage.clear() // a new tab: a new client id
  const clientId = uniqueClientId()
  const db = new DbConnection()
  await withTimeout(db.connect(socketUrl), `${name} connects`)
  const tabState = { clientId, states: [], presence: {} }
  const state = new StateListener({ db, key: 'shared', callback: (s) => tabState.states.push(s) })
  const reducer = new Reducer({
    key: 'counter',
    db,
    initialValue: 0,
    reducer: (n, action) => n + action.by,
    callback: () => {},
  })
  const presence = new PresenceListener({
    db,
    clientId,
    initialState: { name },
    callback: (p) => (tabState.presence = p),
  })
  for (const listener of [state, reducer, presence]) listener.subscribe()
  cleanups.push(() => {
    for (const listener of [state, reducer, presence]) listener.destroy()
    clearTimeout(db.reconnectLoopHandle)
    db.disconnect()
  })
  return Object.assign(tabState, {
    db,
    state,
    reducer,
    presenceListener: presence,
    counter: () => reducer.compactor.lastConfirmedState,
  })
}

test('state, reducer and presence recover across a restart', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftdb-compat-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const port = await freePort()
  const args = ['--storage', 'embedded', '--data-dir', dir]
  let server = await startServer({ port, args })
  cleanups.push(() => server.stop())

  const room = await new Api(server.url).newRoom()
  const alice = await tab(room.socket_url, 'alice')
  const bob = await tab(room.socket_url, 'bob')
  alice.state.setStateOptimistic({ text: 'before the restart' })
  for (let i = 0; i < 3; i++) alice.reducer.dispatch({ by: 1 })
  await eventually(() => assert.deepEqual(bob.states.at(-1), { text: 'before the restart' }), { what: 'state at bob' })
  await eventually(() => assert.equal(bob.counter(), 3), { what: "bob's counter at 3" })
  await eventually(() => assert.deepEqual(bob.presence[alice.clientId]?.value, { name: 'alice' }), { what: 'presence' })

  await server.stop()
  server = await startServer({ port, args })

  // A tab opened after the restart gets the stored state and rebuilds the counter.
  const carol = await tab(room.socket_url, 'carol')
  await eventually(() => assert.deepEqual(carol.states.at(-1), { text: 'before the restart' }), {
    what: 'state at carol',
  })
  await eventually(() => assert.equal(carol.counter(), 3), { what: "carol's counter rebuilt from the store" })

  // The tabs that were open reconnect by themselves and write on: every increment counted exactly once. (The 1.0.12
  // client does not subscribe again after a reconnect, so the writers' own views stop there; carol's is live.)
  await eventually(() => assert.equal(alice.db.status.connected, true), {
    what: 'alice reconnected',
    timeout: RECONNECT_MS,
  })
  for (let i = 0; i < 2; i++) alice.reducer.dispatch({ by: 1 })
  await eventually(() => assert.equal(carol.counter(), 5), { what: "carol's counter at 5" })
  const dave = await tab(room.socket_url, 'dave')
  await eventually(() => assert.equal(dave.counter(), 5), { what: "a new tab's counter at 5" })
  alice.presenceListener.updateState({ name: 'alice', back: true })
  await eventually(() => assert.deepEqual(carol.presence[alice.clientId]?.value, { name: 'alice', back: true }), {
    what: "alice's presence at carol after the restart",
    timeout: RECONNECT_MS,
  })
})
