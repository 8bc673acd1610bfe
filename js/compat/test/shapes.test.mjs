// Every message a driftdb 1.0.12 client can receive, compared exactly (fields, values and field order) with what the
// reference server sends for the same actions. The expected shapes are written from the reference's source
// (drifting-in-space/driftdb: `driftdb/src/types/mod.rs` `MessageFromDatabase`, serialised by serde with
// `tag = "type"` in declaration order; `driftdb/src/db.rs` and `store.rs` for when each is sent;
// `driftdb-server/src/server.rs` for HTTP send). A client that does not opt in (`ext=true`) must never see a field
// the reference does not send (`epoch`, `volatile`).
//
// Raw sockets and fetch rather than the 1.0.12 client, so that nothing the client ignores can hide a difference.
// CBOR is decoded with cbor-web, the decoder of the 1.0.12 client.

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import cbor from 'cbor-web'
import { WebSocket } from 'ws'
import { startServer } from '../../test-support/server.mjs'
import { withTimeout } from './helpers.mjs'

let server
before(async () => {
  server = await startServer()
})
after(async () => {
  await server?.stop()
})

/** `actual` equals `expected` exactly: deep equality with matching types, and the same field order. */
function assertExact(actual, expected, what) {
  assert.deepStrictEqual(actual, expected, what)
  assert.equal(JSON.stringify(actual), JSON.stringify(expected), `${what}: field order`)
}

async function newRoom() {
  const response = await fetch(`${server.url}/new`, { method: 'POST' })
  assert.equal(response.status, 200)
  return (await response.json()).room
}

/** A raw WebSocket client that records every message, decoded as the 1.0.12 client decodes it. */
class RawClient {
  messages = []
  #waiters = []

  static async open(room, query = '') {
    const client = new RawClient()
    client.binary = /cbor=true/.test(query)
    const url = `${server.url.replace(/^http/, 'ws')}/room/${room}/connect${query}`
    client.socket = new WebSocket(url)
    client.socket.binaryType = 'arraybuffer'
    client.socket.on('message', (data, isBinary) => {
      assert.equal(isBinary, client.binary, 'frames of the encoding asked for')
      const message = isBinary ? cbor.decodeFirstSync(new Uint8Array(data)) : JSON.parse(data.toString())
      client.messages.push(message)
      for (const wake of client.#waiters.splice(0)) wake()
    })
    await withTimeout(
      new Promise((resolve, reject) => {
        client.socket.once('open', resolve)
        client.socket.once('error', reject)
      }),
      `connect ${url}`,
    )
    return client
  }

  /** Sends in the client's encoding: CBOR as the 1.0.12 client writes it (cbor-web), JSON as text. */
  send(message) {
    this.socket.send(this.binary ? cbor.encode(message) : JSON.stringify(message))
  }

  /** The next message not yet taken. */
  async next(what) {
    await withTimeout(
      (async () => {
        while (this.messages.length === 0) await new Promise((wake) => this.#waiters.push(wake))
      })(),
      what,
    )
    return this.messages.shift()
  }

  /** A ping round trip: everything the server queued for this client before it arrives first. */
  async sync(nonce) {
    this.send({ type: 'ping', nonce })
    const before = []
    for (;;) {
      const message = await this.next(`pong ${nonce}`)
      if (message.type === 'pong' && message.nonce === nonce) return before
      before.push(message)
    }
  }

  close() {
    this.socket.close()
  }
}

const push = (key, value, action) => ({ type: 'push', key, value, action })

for (const encoding of ['JSON', 'CBOR']) {
  const query = encoding === 'CBOR' ? '?cbor=true' : ''

  test(`${encoding}: a plain client gets exactly the reference's init, push, stream_size, pong and error`, async () => {
    const room = await newRoom()
    const reader = await RawClient.open(room, query)
    const writer = await RawClient.open(room, query)
    try {
      reader.send({ type: 'get', key: 'k', seq: 0 })
      assertExact(await reader.next('init'), { type: 'init', key: 'k', data: [] }, 'init of a new key')

      // The reference answers the sender with stream_size after any push whose key then stores more than 1 entry.
      writer.send(push('k', { n: 1 }, { type: 'append' }))
      writer.send(push('k', { n: 2 }, { type: 'append' }))
      writer.send(push('k', 'r', { type: 'relay' }))
      writer.send(push('k', 'x', { type: 'replace' }))
      writer.send(push('k', [true, null, 1.5], { type: 'append' }))
      writer.send(push('k', { reset: 1 }, { type: 'compact', seq: 5 }))
      assertExact(
        await writer.sync(1),
        [
          { type: 'stream_size', key: 'k', size: 2 },
          { type: 'stream_size', key: 'k', size: 2 },
          { type: 'stream_size', key: 'k', size: 2 },
        ],
        'stream_size to the sender alone, after the 2nd append, the relay and the last append',
      )
      assertExact(
        await reader.sync(2),
        [
          { type: 'push', key: 'k', value: { n: 1 }, seq: 1 },
          { type: 'push', key: 'k', value: { n: 2 }, seq: 2 },
          { type: 'push', key: 'k', value: 'r', seq: 3 },
          { type: 'push', key: 'k', value: 'x', seq: 4 },
          { type: 'push', key: 'k', value: [true, null, 1.5], seq: 5 },
        ],
        'pushes carry key, value and seq only; compact delivers nothing',
      )

      // Replay: entries after the given seq, each {value, seq}.
      reader.send({ type: 'get', key: 'k', seq: 0 })
      assertExact(
        await reader.next('replay init'),
        { type: 'init', key: 'k', data: [{ value: { reset: 1 }, seq: 5 }] },
        'init after a compaction',
      )

      reader.send({ type: 'ping', nonce: 7 })
      assertExact(await reader.next('pong'), { type: 'pong', nonce: 7 }, 'pong with a nonce')
      reader.send({ type: 'ping' })
      assertExact(await reader.next('pong'), { type: 'pong', nonce: null }, 'pong without a nonce')

      // The reference's shape, {type, message}; the text is ours (the reference closes the connection here).
      reader.send({ type: 'nope' })
      assertExact(await reader.next('error'), { type: 'error', message: 'unknown message type `nope`' }, 'error')
    } finally {
      reader.close()
      writer.close()
    }
  })

  test(`${encoding}: a volatile relay from one of our clients reaches a plain client as the reference's push`, async () => {
    const room = await newRoom()
    const plain = await RawClient.open(room, query)
    const ours = await RawClient.open(room, `${query ? `${query}&` : '?'}ext=true`)
    try {
      plain.send({ type: 'get', key: 'c', seq: null })
      assertExact(await plain.sync(0), [], 'subscribed, without an init') // the pong: the get was handled
      ours.send({ type: 'get', key: 'c' })
      const init = await ours.next('init')
      assert.deepStrictEqual(Object.keys(init), ['type', 'key', 'data', 'epoch'], 'an opted-in init carries epoch')
      assert.match(init.epoch, /^[0-9a-f]{16}$/)
      ours.send({ ...push('c', { x: 3 }, { type: 'relay' }), volatile: true })
      assertExact(await plain.sync(1), [{ type: 'push', key: 'c', value: { x: 3 }, seq: 1 }], 'plain: no volatile')
      assertExact(
        await ours.sync(2),
        [{ type: 'push', key: 'c', value: { x: 3 }, seq: 1, volatile: true }],
        'opted in: volatile',
      )
    } finally {
      plain.close()
      ours.close()
    }
  })
}

test('HTTP send answers exactly the reference server replies, and the opted-in init with its epoch', async () => {
  const room = await newRoom()
  /** POSTs one message; returns the body text and its parsed form. */
  const send = async (message, path = 'send') => {
    const response = await fetch(`${server.url}/room/${room}/${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(message),
    })
    assert.equal(response.status, 200, `${message.type}: ${response.status}`)
    assert.equal(response.headers.get('content-type'), 'application/json')
    const text = await response.text()
    return { text, json: JSON.parse(text) }
  }
  const exactly = async (message, expected, what) => {
    const reply = await send(message)
    assertExact(reply.json, expected, what)
    assert.equal(reply.text, JSON.stringify(expected), `${what}: compact JSON text`)
  }

  await exactly(push('h', 1, { type: 'append' }), null, 'push into an empty stream: null')
  await exactly(push('h', 2, { type: 'append' }), { type: 'stream_size', key: 'h', size: 2 }, 'then stream_size')
  await exactly(push('h', 3, { type: 'relay' }), { type: 'stream_size', key: 'h', size: 2 }, 'relay: stream_size')
  await exactly({ type: 'get', key: 'h', seq: 1 }, { type: 'init', key: 'h', data: [{ value: 2, seq: 2 }] }, 'get')
  await exactly(
    { type: 'get', key: 'h' },
    {
      type: 'init',
      key: 'h',
      data: [
        { value: 1, seq: 1 },
        { value: 2, seq: 2 },
      ],
    },
    'get, seq omitted',
  )
  await exactly({ type: 'get', key: 'h', seq: null }, null, 'get with seq null')
  await exactly({ type: 'get', key: 'never' }, { type: 'init', key: 'never', data: [] }, 'get of a key never written')
  await exactly({ type: 'ping', nonce: 9 }, { type: 'pong', nonce: 9 }, 'ping')
  await exactly({ type: 'ping' }, { type: 'pong', nonce: null }, 'ping without nonce')

  const opted = await send({ type: 'get', key: 'h', seq: 1 }, 'send?ext=true')
  assert.deepStrictEqual(Object.keys(opted.json), ['type', 'key', 'data', 'epoch'])
  assert.deepStrictEqual(opted.json.data, [{ value: 2, seq: 2 }])
})
