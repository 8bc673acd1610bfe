// Our client opts in to the server's extended shapes (`ext=true`): its `init`s carry the room's epoch, on the
// WebSocket (JSON and CBOR) and over HTTP send, which the resume and reset logic relies on. (A client that does not
// opt in gets the reference's shapes: js/compat/test/shapes.test.mjs.)
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DbConnection, FAST, HttpConnection, eventually, useServer } from './helpers.mjs'

const env = useServer()

for (const cbor of [false, true]) {
  test(`DbConnection (${cbor ? 'CBOR' : 'JSON'}) receives init with an epoch, and keeps the 1.0.12 dbUrl`, async () => {
    const room = await env.api.newRoom()
    const db = new DbConnection()
    env.open.push(db)
    const inits = []
    db.messageListener.addListener((message) => {
      if (message.type === 'init') inits.push(message)
    })
    await db.connect({ room, ...FAST, cbor })
    assert.equal(db.dbUrl, cbor ? `${room.socket_url}?cbor=true` : room.socket_url, 'dbUrl as 1.0.12 shows it')
    db.subscribe('k', () => {})
    await eventually(() => assert.equal(inits.length, 1), { what: 'the init' })
    assert.deepEqual(Object.keys(inits[0]), ['type', 'key', 'data', 'epoch'])
    assert.match(inits[0].epoch, /^[0-9a-f]{16}$/)
  })
}

test('HttpConnection receives init with the same epoch', async () => {
  const room = await env.api.newRoom()
  const http = new HttpConnection(room.http_url)
  const first = await http.send({ type: 'get', key: 'k' })
  assert.deepEqual(Object.keys(first), ['type', 'key', 'data', 'epoch'])
  assert.equal((await http.send({ type: 'get', key: 'other' })).epoch, first.epoch, 'one epoch per room')
})
