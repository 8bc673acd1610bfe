// Reducer (append of {apply, i}, compaction into {reset} above 30 stored entries) with concurrent writers.

import { Reducer, assert, assertIncreasingSeqs, eventually, useServer, withTimeout } from './helpers.mjs'

const serverTest = useServer()

const KEY = 'counter'
const PER_CLIENT = 50
const counter = (state, action) => state + action.by

/** A subscribed counter Reducer (default sizeThreshold) on its own connection. */
async function counterClient(scope, room) {
  const db = await scope.connect(room.socket_url)
  const states = []
  const reducer = scope.track(
    new Reducer({ key: KEY, reducer: counter, initialValue: 0, db, callback: (state) => states.push(state) }),
  )
  reducer.subscribe()
  await scope.waitForInit(db, KEY)
  return { db, reducer, states }
}

// The reducer applies its own actions optimistically and, by design, does not call back when the server
// confirms them, so the displayed state can lag; the state built from the server's stream is this one.
const confirmedState = (client) => client.reducer.compactor.lastConfirmedState

serverTest('concurrent reducers agree, compact the stream, and a newcomer rebuilds the state', async (scope) => {
  const room = await scope.newRoom()
  const alice = await counterClient(scope, room)
  const bob = await counterClient(scope, room)

  for (let i = 0; i < PER_CLIENT; i++) {
    alice.reducer.dispatch({ by: 1 })
    bob.reducer.dispatch({ by: 1 })
  }
  const total = 2 * PER_CLIENT
  for (const [name, client] of Object.entries({ alice, bob })) {
    await eventually(() => assert.equal(confirmedState(client), total), {
      what: `${name}'s confirmed counter to reach ${total}`,
    })
  }

  // Compaction is driven by stream_size, which the server sends to the writer.
  const sizes = [alice, bob].flatMap((c) => scope.messages(c.db).filter((m) => m.type === 'stream_size'))
  assert.ok(
    sizes.some((m) => m.key === KEY && m.size > 30),
    `no stream_size above 30 was received: ${sizes.map((m) => m.size)}`,
  )

  // A ping round-trip on each writer lets compactions they sent before it reach the server first.
  await withTimeout(alice.db.testLatency(), 'ping on alice')
  await withTimeout(bob.db.testLatency(), 'ping on bob')

  // A client joining now computes the same state from the (compacted) replay.
  const carol = await counterClient(scope, room)
  await eventually(() => assert.equal(carol.states.at(-1), total), { what: "carol's state to reach the total" })
  assert.equal(confirmedState(carol), total)

  // The stored stream itself: a {reset} entry first, then few enough entries to prove compaction ran.
  const raw = await scope.connect(room.socket_url)
  const { values: stored } = await scope.subscribe(raw, KEY)
  assert.ok(stored.length >= 1 && stored.length < 50, `stored stream has ${stored.length} entries`)
  assert.ok(stored[0].value && 'reset' in stored[0].value, `first entry is not a reset: ${JSON.stringify(stored[0])}`)
  assertIncreasingSeqs(stored, 'stored stream')
  const rest = stored.slice(1)
  assert.ok(
    rest.every((entry) => entry.value && 'apply' in entry.value),
    `entries after the reset are not all actions: ${JSON.stringify(rest)}`,
  )
  const rebuilt = rest.reduce((state, entry) => counter(state, entry.value.apply), stored[0].value.reset)
  assert.equal(rebuilt, total, `reset ${stored[0].value.reset} + ${rest.length} actions`)
})
