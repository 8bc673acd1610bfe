// The client against a server's room limits: a refused `get` does not leave the key waiting for an init forever.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Api, DbConnection, FAST, collector, eventually, startServer } from './helpers.mjs'

let server
let api
const open = []

before(async () => {
  server = await startServer({ args: ['--max-keys-per-room', '1'] })
  api = new Api(server.url)
})

after(async () => {
  for (const db of open) db.disconnect()
  await server?.stop()
})

async function connect(room) {
  const db = new DbConnection()
  open.push(db)
  await db.connect({ room, ...FAST })
  return db
}

/** Resolves with the next `error` message `db` receives. */
const nextError = (db) =>
  new Promise((resolve) => {
    const listener = (m) => {
      if (m.type !== 'error') return
      db.messageListener.removeListener(listener)
      resolve(m)
    }
    db.messageListener.addListener(listener)
  })

test('a get refused by the key limit is forgotten: a later listener on the key asks again and gets its init', async () => {
  const room = await api.newRoom()
  const db = await connect(room)
  const inits = { a: 0, b: 0 }
  const onInit = (key) => ({ onInit: () => inits[key]++ })

  const first = collector()
  db.subscribe('a', first, undefined, onInit('a'))
  await eventually(() => assert.equal(inits.a, 1), { what: 'the init of a' })

  // The room holds one key: the get of a second key is refused.
  const refused = nextError(db)
  const early = collector()
  db.subscribe('b', early, undefined, onInit('b'))
  assert.match((await refused).message, /room key limit reached/)
  // A ping after the error: the client has heard everything the server answered before it.
  assert.ok((await db.testLatency()) >= 0)
  assert.equal(inits.b, 0)

  // Key a leaves the room (no subscriber, nothing stored), so b now fits; a later listener on b asks for it.
  db.unsubscribe('a', first)
  const late = collector()
  db.subscribe('b', late, undefined, onInit('b'))
  await eventually(() => assert.ok(inits.b >= 1), { what: 'an init of b after the refusal' })

  // Both listeners of b are live: a push from another client reaches each of them once.
  const other = await connect(room)
  other.send({ type: 'push', key: 'b', value: 'hello', action: { type: 'append' } })
  await eventually(
    () => {
      assert.deepEqual(
        early.values.map((e) => e.value),
        ['hello'],
      )
      assert.deepEqual(
        late.values.map((e) => e.value),
        ['hello'],
      )
    },
    { what: 'the push to b at both listeners' },
  )
})
