// Room tokens from the client's side, against the real server with `--auth-key-file` (see auth-fixture.mjs): Node
// over WebSocket for the `token` and `getToken` options, HttpConnection and Api. The Chromium page is in
// auth-browser.test.mjs.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { ADMIN_TOKEN, useAuthServer } from './auth-fixture.mjs'
import { Api, DbConnection, FAST, HttpConnection, waitFor } from './helpers.mjs'

/** Polls `check` until it is truthy. */
const when = (what, check, timeout = 5_000) => waitFor(check, { what, timeout })

// Registered before the server's own `after`, so the clients go before the server does.
const open = []
after(() => {
  for (const db of open) db.disconnect()
})
const env = useAuthServer()
const issue = (...args) => env.issue(...args)

async function roomFor(token) {
  const api = new Api(env.server.url)
  const created = await api.newRoom(ADMIN_TOKEN)
  return api.getRoom(created.room, token ?? (await issue(created.room, ['read'])))
}

function errors(db) {
  const seen = []
  db.messageListener.addListener((m) => {
    if (m.type === 'error') seen.push(m.message)
  })
  return seen
}

test('Api: newRoom needs the admin token; getRoom a room token', async () => {
  const api = new Api(env.server.url)
  await assert.rejects(api.newRoom(), /401/)
  const room = await api.newRoom(ADMIN_TOKEN)
  await assert.rejects(api.getRoom(room.room), /401/)
  await assert.rejects(api.getRoom(room.room, await issue('elsewhere', ['read'])), /403/)
  assert.equal((await api.getRoom(room.room, await issue(room.room, ['read']))).room, room.room)
})

test('token option: a read-only connection reads and is refused writes; a writer writes', async () => {
  const room = await roomFor()
  const reader = new DbConnection()
  const writer = new DbConnection()
  open.push(reader, writer)
  const refused = errors(reader)
  const seen = []
  reader.subscribe('count', (e) => seen.push(e.value))
  await reader.connect({ room, ...FAST, transport: 'websocket', token: await issue(room.room, ['read']) })
  await writer.connect({ room, ...FAST, transport: 'websocket', token: await issue(room.room, ['write']) })
  writer.send({ type: 'push', key: 'count', value: 1, action: { type: 'replace' } })
  await when('the reader sees the write', () => seen.includes(1))
  reader.send({ type: 'push', key: 'count', value: 99, action: { type: 'replace' } })
  await when('the reader is told why', () => refused.includes('the token lacks the `write` capability'))
  assert.equal(reader.status.connected, true, 'a refused message keeps the connection')
  assert.deepEqual(seen, [1])
})

test('getToken: asked on connect, before exp (refreshed in-band, same connection) and on reconnect', async () => {
  const room = await roomFor()
  const asked = []
  const db = new DbConnection()
  open.push(db)
  const getToken = (id) => {
    asked.push(id)
    return issue(id, ['read', 'write'], 3)
  }
  await db.connect({ room, ...FAST, transport: 'websocket', getToken, tokenRefreshMarginMs: 1_500 })
  assert.deepEqual(asked, [room.room])
  const seen = []
  db.subscribe('k', (e) => seen.push(e.value))
  // Past the first token's exp: still the first connection, thanks to the in-band refresh.
  await when('a refresh', () => asked.length >= 2)
  await new Promise((r) => setTimeout(r, 2_500))
  assert.equal(db.connectionId, 1, 'the connection survived its first token')
  db.send({ type: 'push', key: 'k', value: 'after exp', action: { type: 'append' } })
  await when('the refreshed connection may write', () => seen.includes('after exp'))

  const before = asked.length
  db.connection.close()
  await when('a reconnect with a fresh token', () => db.connectionId === 2 && db.status.connected)
  assert.ok(asked.length > before, 'getToken was asked again on reconnect')
})

test('HttpConnection sends its token as a bearer header', async () => {
  const room = await roomFor()
  const refused = new HttpConnection(room.http_url, await issue(room.room, ['read']))
  await assert.rejects(refused.send({ type: 'push', key: 'k', value: 1, action: { type: 'append' } }), /403/)
  const writer = new HttpConnection(room.http_url, await issue(room.room, ['write', 'read']))
  await writer.send({ type: 'push', key: 'k', value: 1, action: { type: 'append' } })
  const init = await writer.send({ type: 'get', key: 'k', seq: 0 })
  assert.deepEqual(init.data, [{ value: 1, seq: 1 }])
})
