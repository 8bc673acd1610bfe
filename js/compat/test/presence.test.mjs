// PresenceListener (relay of {value, client} on `__presence`) between two clients.

import { HttpConnection, PresenceListener, assert, eventually, uniqueClientId, useServer } from './helpers.mjs'

const serverTest = useServer()

/** A subscribed PresenceListener on its own connection, with the client id of a fresh browser tab. */
async function presenceClient(scope, room, initialState) {
  sessionStorage.clear() // a new tab: uniqueClientId() makes a new id
  const clientId = uniqueClientId()
  assert.equal(uniqueClientId(), clientId, 'uniqueClientId() is not stable within a tab')

  const db = await scope.connect(room.socket_url)
  const client = { clientId, presence: {} }
  const listener = new PresenceListener({
    db,
    clientId,
    initialState,
    callback: (presence) => {
      client.presence = presence
    },
  })
  client.listener = scope.track(listener)
  listener.subscribe()
  return client
}

/** Waits until `observer` sees `other`'s presence with `value`. */
function waitForPresence(observer, other, value, what) {
  return eventually(() => assert.deepEqual(observer.presence[other.clientId]?.value, value), { what })
}

serverTest('clients see each other and presence updates', async (scope) => {
  const room = await scope.newRoom()
  const alice = await presenceClient(scope, room, { name: 'alice' })
  const bob = await presenceClient(scope, room, { name: 'bob' })
  assert.notEqual(alice.clientId, bob.clientId)

  await waitForPresence(alice, bob, { name: 'bob' }, "bob's presence at alice")
  await waitForPresence(bob, alice, { name: 'alice' }, "alice's presence at bob")
  assert.equal(alice.clientId in alice.presence, false, 'alice sees herself')

  alice.listener.updateState({ name: 'alice', cursor: [3, 4] })
  await waitForPresence(bob, alice, { name: 'alice', cursor: [3, 4] }, "alice's updated presence at bob")

  // Presence is relayed, never stored: the key's stored stream is empty. (Read over HTTP: a subscriber would also
  // get the next live heartbeat, which may come at any moment.)
  const init = await new HttpConnection(room.http_url).send({ type: 'get', key: '__presence', seq: 0 })
  assert.deepEqual(init, { type: 'init', key: '__presence', data: [] })
})
