// Room tokens from the client's side, against the real server with `--auth-key-file`: the tokens are issued the way
// docs/auth.md tells a backend to (jose, an Ed25519 key whose public JWK the server reads). Node over WebSocket for
// the `token` and `getToken` options, HttpConnection and Api; headless Chromium (WebTransport on) for a read-only
// page that watches a writer's counter and shows the error its own clicks get.
// The Chromium test's page.evaluate / waitForFunction callbacks run in the page.
/* global window, document */
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { launchChromium } from '../../../test-support/chromium.mjs'
import { startSite } from '../../../test-support/site.mjs'
import { Api, DbConnection, FAST, HttpConnection, startServer, waitFor } from './helpers.mjs'

/** Polls `check` until it is truthy. */
const when = (what, check, timeout = 5_000) => waitFor(check, { what, timeout })

const KID = 'test-key-1'
let dir
let privateKey
let server
const open = []

/** What the app's backend does: sign a short-lived token for one room with some capabilities. */
function issue(room, can, ttlSeconds = 600) {
  return new SignJWT({ room, can })
    .setProtectedHeader({ alg: 'EdDSA', kid: KID })
    .setSubject('tester')
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(privateKey)
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'driftdb-auth-js-'))
  const pair = await generateKeyPair('Ed25519', { extractable: true })
  privateKey = pair.privateKey
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'EdDSA' }
  await writeFile(join(dir, 'public.jwk'), JSON.stringify(publicJwk))
  await writeFile(join(dir, 'admin'), 'the-admin-token')
  server = await startServer({
    args: ['--webtransport', '--auth-key-file', join(dir, 'public.jwk'), '--admin-token-file', join(dir, 'admin')],
  })
})

after(async () => {
  for (const db of open) db.disconnect()
  await server?.stop()
  await rm(dir, { recursive: true, force: true })
})

async function roomFor(token) {
  const api = new Api(server.url)
  const created = await api.newRoom('the-admin-token')
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
  const api = new Api(server.url)
  await assert.rejects(api.newRoom(), /401/)
  const room = await api.newRoom('the-admin-token')
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

const COUNTER_PAGE = fileURLToPath(new URL('./browser/counter.js', import.meta.url))

test('Chromium: a read-only page watches the writer page count; its own clicks are refused, the error shown', async () => {
  const site = await startSite({ script: COUNTER_PAGE })
  const chrome = await launchChromium()
  try {
    const { room } = await new Api(server.url).newRoom('the-admin-token')
    const page = async (can) => {
      const p = await chrome.context.newPage()
      p.setDefaultTimeout(10_000)
      await p.goto(site.url)
      await p.waitForFunction(() => typeof window.start === 'function')
      const transport = await p.evaluate(
        ([api, id, token]) => window.start(api, id, token),
        [server.url, room, await issue(room, can)],
      )
      assert.equal(transport, 'webtransport', 'the token travels on the WebTransport CONNECT URL too')
      return p
    }
    const writer = await page(['read', 'write'])
    const reader = await page(['read'])
    for (let i = 0; i < 3; i++) await writer.click('#inc')
    await reader.waitForFunction(() => document.getElementById('count').textContent === '3')
    await reader.click('#inc')
    await reader.waitForFunction(() => document.getElementById('error').textContent !== '')
    assert.equal(await reader.textContent('#error'), 'the token lacks the `write` capability')
    await writer.click('#inc')
    await reader.waitForFunction(() => document.getElementById('count').textContent === '4')
    assert.equal(await writer.textContent('#error'), '')
  } finally {
    await chrome.close()
    await site.close()
  }
})
