// StateListener (shared state, `replace` of {v, i}) between connections.

import { StateListener, assert, eventually, useServer, waitFor } from './helpers.mjs'

const serverTest = useServer()

/** A subscribed StateListener on its own connection, recording the states handed to its callback. */
async function stateClient(scope, room, key) {
  const db = await scope.connect(room.socket_url)
  const seen = []
  const listener = scope.track(new StateListener({ db, key, callback: (state) => seen.push(state) }))
  listener.subscribe()
  await scope.waitForInit(db, key)
  return { listener, seen }
}

serverTest('setStateOptimistic on one client reaches the other, and a late client gets the last state', async (scope) => {
  const room = await scope.newRoom()
  const key = 'shared'
  const alice = await stateClient(scope, room, key)
  const bob = await stateClient(scope, room, key)

  alice.listener.setStateOptimistic({ text: 'from alice', n: 1 })
  await eventually(() => assert.deepEqual(bob.seen.at(-1), { text: 'from alice', n: 1 }), {
    what: "alice's state at bob",
  })

  bob.listener.setStateOptimistic({ text: 'from bob', n: 2 })
  await eventually(() => assert.deepEqual(alice.seen.at(-1), { text: 'from bob', n: 2 }), {
    what: "bob's state at alice",
  })
  // Each client saw the other's state, never its own echo: alice's own state appears once (optimistically).
  assert.deepEqual(alice.seen, [{ text: 'from alice', n: 1 }, { text: 'from bob', n: 2 }])

  // `replace` keeps only the last state, which a newcomer receives on subscribing.
  const carol = await stateClient(scope, room, key)
  await waitFor(() => carol.seen.length > 0, { what: 'the replayed state at a late client' })
  assert.deepEqual(carol.seen, [{ text: 'from bob', n: 2 }])
})
