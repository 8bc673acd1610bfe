// The WebTransport path and the `auto` race, in Node, with a scripted fake of the browser's WebTransport API
// (real web streams, postcard frames) standing in for the server's QUIC endpoint. The WebSocket side is the
// real server.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  DbConnection,
  FAST,
  collector,
  decodeCbor,
  encodeCbor,
  eventually,
  postcard,
  sleep,
  useServer,
  waitFor,
} from './helpers.mjs'

const values = { encode: encodeCbor, decode: decodeCbor }
const env = useServer()
const { open } = env

/** A fake `WebTransport` whose behaviour is set per test: 'ok', 'hang' or 'fail'. */
function fakeWebTransport(behaviour, onSession = () => {}) {
  const sessions = []
  class FakeWebTransport {
    constructor(url, options) {
      this.url = url
      this.options = options
      this.received = [] // decoded client messages from the control stream
      this.datagramsIn = [] // decoded client messages from datagrams
      let dgController
      this.datagrams = {
        readable: new ReadableStream({ start: (c) => (dgController = c) }),
        writable: new WritableStream({
          write: (chunk) => {
            this.datagramsIn.push(postcard.decodeClient(chunk, values))
          },
        }),
        maxDatagramSize: 1200,
      }
      this.sendDatagram = (message) => dgController.enqueue(postcard.encodeServer(message, values))
      let closeSession
      this.closed = new Promise((resolve) => (closeSession = resolve))
      this.kill = () => {
        try {
          this.controller?.error(new Error('session lost'))
        } catch {
          // already closed
        }
        closeSession({ closeCode: 0, reason: 'killed' })
      }
      this.close = () => closeSession({ closeCode: 0, reason: '' })
      this.ready =
        behaviour === 'hang'
          ? new Promise(() => {})
          : behaviour === 'fail'
            ? Promise.reject(new Error('QUIC handshake failed'))
            : Promise.resolve()
      this.ready.catch(() => {})
      sessions.push(this)
    }
    async createBidirectionalStream() {
      const readable = new ReadableStream({ start: (c) => (this.controller = c) })
      const frames = new postcard.FrameReader()
      const writable = new WritableStream({
        write: (chunk) => {
          for (const f of frames.push(chunk)) {
            const m = postcard.decodeClient(f, values)
            this.received.push(m)
            onSession(this, m)
          }
        },
      })
      this.send = (message) => this.controller.enqueue(postcard.frame(postcard.encodeServer(message, values)))
      return { readable, writable }
    }
  }
  return { FakeWebTransport, sessions }
}

const HASH = 'ab'.repeat(32)

async function wtRoom() {
  const room = await env.api.newRoom()
  return { ...room, webtransport_url: `https://127.0.0.1:1/room/${room.room}/connect`, certificate_hashes: [HASH] }
}

test('auto: a WebTransport that never connects gives way to WebSocket after the head start', async () => {
  const room = await wtRoom()
  const { FakeWebTransport, sessions } = fakeWebTransport('hang')
  const db = new DbConnection()
  open.push(db)
  const t0 = Date.now()
  await db.connect({ room, ...FAST, WebTransport: FakeWebTransport })
  const elapsed = Date.now() - t0
  assert.equal(db.status.transport, 'websocket')
  assert.ok(elapsed >= 450 && elapsed < 2_000, `connected through WebSocket after ${elapsed} ms`)
  assert.equal(sessions.length, 1)
  assert.equal(sessions[0].url, room.webtransport_url)
  const [hash] = sessions[0].options.serverCertificateHashes
  assert.equal(hash.algorithm, 'sha-256')
  assert.deepEqual([...hash.value], Array(32).fill(0xab))
  db.disconnect()
})

test('auto: a WebTransport that fails outright starts WebSocket at once', async () => {
  const room = await wtRoom()
  const { FakeWebTransport } = fakeWebTransport('fail')
  const db = new DbConnection()
  open.push(db)
  const t0 = Date.now()
  await db.connect({ room, ...FAST, WebTransport: FakeWebTransport })
  assert.equal(db.status.transport, 'websocket')
  assert.ok(Date.now() - t0 < 450, 'no head-start wait after a failure')
  db.disconnect()
})

test('transport: websocket forces WebSocket; webtransport without the API never connects', async () => {
  const room = await wtRoom()
  const { FakeWebTransport, sessions } = fakeWebTransport('ok')
  const db = new DbConnection()
  open.push(db)
  await db.connect({ room, ...FAST, WebTransport: FakeWebTransport, transport: 'websocket' })
  assert.equal(db.status.transport, 'websocket')
  assert.equal(sessions.length, 0)
  db.disconnect()
  const db2 = new DbConnection()
  open.push(db2)
  const p = db2.connect({ room, ...FAST, transport: 'webtransport' })
  const r = await Promise.race([p.then(() => 'connected'), sleep(300).then(() => 'waiting')])
  assert.equal(r, 'waiting')
  assert.equal(db2.status.connected, false)
  db2.disconnect()
})

test('webtransport: control stream, datagrams for small volatile relays, stale volatile dropped, epoch reset', async () => {
  const room = await wtRoom()
  const stored = []
  let epoch = 'epoch-1'
  const fake = fakeWebTransport('ok', (session, m) => {
    if (m.type === 'get') {
      session.send({ type: 'init', key: m.key, data: stored.filter((e) => e.seq > m.seq), epoch })
    }
    if (m.type === 'ping') session.send({ type: 'pong', nonce: m.nonce ?? null })
  })
  const db = new DbConnection()
  open.push(db)
  stored.push({ value: { bytes: new Uint8Array([1, 2]) }, seq: 1 }, { value: 'two', seq: 2 })
  // Explicit URL options rather than `room`: with a room, a reconnection re-reads it from the (real) server,
  // which offers no WebTransport here.
  await db.connect({
    url: room.socket_url,
    webtransportUrl: room.webtransport_url,
    certificateHashes: room.certificate_hashes,
    ...FAST,
    WebTransport: fake.FakeWebTransport,
  })
  assert.equal(db.status.transport, 'webtransport')
  const s1 = fake.sessions[0]
  const got = collector()
  const resets = collector()
  db.subscribe('k', got, undefined, { onReset: resets })
  await eventually(() => assert.equal(got.values.length, 2), { what: 'init over the control stream' })
  assert.deepEqual(s1.received[0], { type: 'get', key: 'k', seq: 0 })
  assert.deepEqual(got.values[0].value.bytes, new Uint8Array([1, 2]))

  // Volatile relays: small ones by datagram, big ones on the stream; reliable pushes on the stream.
  db.send({ type: 'push', key: 'c', value: { x: 1 }, action: { type: 'relay' }, volatile: true })
  db.send({ type: 'push', key: 'c', value: 'x'.repeat(2000), action: { type: 'relay' }, volatile: true })
  db.send({ type: 'push', key: 'k', value: 'r', action: { type: 'append' } })
  await eventually(() => assert.equal(s1.datagramsIn.length, 1), { what: 'datagram' })
  assert.deepEqual(s1.datagramsIn[0].value, { x: 1 })
  assert.equal(s1.datagramsIn[0].volatile, true)
  await eventually(() => assert.equal(s1.received.filter((m) => m.type === 'push').length, 2), { what: 'stream' })
  const [big, reliable] = s1.received.filter((m) => m.type === 'push')
  assert.equal(big.volatile, true)
  assert.equal(big.value.length, 2000)
  assert.equal(reliable.volatile, false)

  // Incoming: a volatile datagram at seq 10 overtakes reliable seq 9; a stale volatile (8) is dropped.
  s1.sendDatagram({ type: 'push', key: 'k', value: 'v10', seq: 10, volatile: true })
  await eventually(() => assert.equal(got.values.at(-1).value, 'v10'), { what: 'volatile 10' })
  s1.sendDatagram({ type: 'push', key: 'k', value: 'v8', seq: 8, volatile: true })
  s1.send({ type: 'push', key: 'k', value: 'r9', seq: 9 })
  stored.push({ value: 'r9', seq: 9 })
  await eventually(() => assert.equal(got.values.at(-1).value, 'r9'), { what: 'reliable 9 still delivered' })
  assert.ok(!got.values.some((e) => e.value === 'v8'), 'stale volatile dropped')
  assert.ok((await db.testLatency()) >= 0)

  // The session dies; the reconnection resumes from seq 9 on a new session with a new epoch: reset, replay from 0.
  epoch = 'epoch-2'
  stored.length = 0
  stored.push({ value: 'fresh', seq: 1 })
  const before = got.values.length
  s1.kill()
  await waitFor(() => fake.sessions.length === 2 && db.status.connected, { what: 'new session' })
  const s2 = fake.sessions[1]
  await eventually(
    () =>
      assert.deepEqual(
        got.values.slice(before).map((e) => e.value),
        ['fresh'],
      ),
    {
      what: 'replay from 0 after the epoch change',
    },
  )
  assert.deepEqual(
    s2.received.filter((m) => m.type === 'get'),
    [
      { type: 'get', key: 'k', seq: 9 },
      { type: 'get', key: 'k', seq: 0 },
    ],
  )
  assert.equal(resets.values.length, 1)
  // disconnect() says goodbye on the control stream.
  db.disconnect()
  await eventually(() => assert.deepEqual(s2.received.at(-1), { type: 'goodbye' }), { what: 'goodbye' })
})

test('auto: on reconnection the room is read again, and its WebTransport details follow the server', async () => {
  const room = await wtRoom() // advertises WebTransport; the real server does not offer it
  const fake = fakeWebTransport('ok', (session, m) => {
    if (m.type === 'get') session.send({ type: 'init', key: m.key, data: [], epoch: 'e' })
  })
  const db = new DbConnection()
  open.push(db)
  await db.connect({ room, ...FAST, WebTransport: fake.FakeWebTransport })
  assert.equal(db.status.transport, 'webtransport')
  fake.sessions[0].kill()
  // GET /room/ID on the real server has no webtransport_url: the reconnection goes straight to WebSocket.
  await waitFor(() => db.status.connected && db.status.transport === 'websocket', {
    what: 'reconnected through WebSocket',
  })
  assert.equal(fake.sessions.length, 1, 'no new WebTransport attempt')
  db.disconnect()
})
