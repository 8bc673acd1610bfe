// The Yjs provider against a real DriftDB server (WebSocket, JSON and CBOR): concurrent edits converge, a late joiner
// and a reload get the whole document, offline edits merge on reconnect, the stream is compacted under its bound,
// awareness reaches the peers, and a server restart loses nothing.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { WebSocket } from 'ws'
import * as Y from 'yjs'

import { Api, DbConnection } from 'driftdb'
import { startServer } from '../../../test-support/server.mjs'
// The TCP proxy of driftdb's tests: clients keep one URL while the server behind it restarts.
import { startProxy } from '../../driftdb/test/helpers.mjs'
import { until, waitFor } from '../../../test-support/wait.mjs'
import { DriftDBProvider } from '../dist/index.js'

const FAST = { WebSocket, backoff: { initialMs: 50, maxMs: 300 }, connectTimeoutMs: 1_000, transport: 'websocket' }

let server
let api
const cleanup = []

before(async () => {
  server = await startServer()
  api = new Api(server.url)
})

after(async () => {
  for (const f of cleanup.reverse()) f()
  await server?.stop()
})

/** A client: a connection to `room`, a doc and its provider on `key`. */
async function client(room, { key = 'doc', cbor = false, compactAbove } = {}) {
  const db = new DbConnection()
  await db.connect({ room, ...FAST, cbor })
  const doc = new Y.Doc()
  const provider = new DriftDBProvider({ db, doc, key, compactAbove, awarenessRefreshMs: 500 })
  cleanup.push(() => {
    provider.destroy()
    db.disconnect()
  })
  await waitFor(() => provider.synced, { what: 'the first sync', timeout: 5_000 })
  return { db, doc, provider, text: doc.getText('t') }
}

/** The key's stored stream, as a fresh raw WebSocket reads it. */
async function storedStream(room, key) {
  const ws = new WebSocket(room.socket_url)
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  const init = new Promise((resolve) =>
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString())
      if (m.type === 'init') resolve(m.data)
    }),
  )
  ws.send(JSON.stringify({ type: 'get', key, seq: 0 }))
  const data = await init
  ws.close()
  return data
}

test('concurrent edits converge between JSON and CBOR clients; a late joiner gets the whole document', async () => {
  const room = await api.newRoom()
  const a = await client(room)
  const b = await client(room, { cbor: true })
  a.text.insert(0, 'hello')
  b.text.insert(0, 'world')
  for (let i = 0; i < 10; i++) {
    a.text.insert(a.text.length, `a${i}`)
    b.text.insert(0, `b${i}`)
  }
  await waitFor(() => a.text.toString() === b.text.toString() && a.text.length === 50, {
    what: `convergence (${a.text.toString()} / ${b.text.toString()})`,
  })
  const late = await client(room)
  await waitFor(() => late.text.toString() === a.text.toString(), { what: 'the late joiner catching up' })
})

test('edits made offline merge on reconnect, both ways', async () => {
  const room = await api.newRoom()
  const a = await client(room)
  const b = await client(room)
  a.text.insert(0, 'shared ')
  await waitFor(() => b.text.toString() === 'shared ', { what: 'the first edit' })

  a.db.close()
  a.text.insert(a.text.length, 'offline-a ')
  b.text.insert(0, 'online-b ')
  await waitFor(() => b.text.toString() === 'online-b shared ', { what: "b's own edit" })
  assert.ok(!b.text.toString().includes('offline-a'), 'a was offline: b cannot have its edit yet')

  await a.db.connect({ room, ...FAST })
  for (const c of [a, b]) {
    await waitFor(() => c.text.toString().includes('offline-a') && c.text.toString().includes('online-b'), {
      what: 'both edits everywhere',
    })
  }
  assert.equal(a.text.toString(), b.text.toString())
  // A reload (a fresh doc) replays the stream, offline edit included.
  const reloaded = await client(room)
  await waitFor(() => reloaded.text.toString() === a.text.toString(), { what: 'the reload' })
})

test('the stream is compacted into a snapshot under its bound and loses nothing', async () => {
  const room = await api.newRoom()
  const bound = 10
  const a = await client(room, { compactAbove: bound })
  const b = await client(room, { compactAbove: bound })
  let expected = ''
  for (let i = 0; i < 60; i++) {
    const who = i % 2 === 0 ? a : b
    who.text.insert(who.text.length, `${i % 10}`)
    expected += `${i % 10}`
    // Alternate writers see each other's characters before appending theirs: a predictable final text.
    await waitFor(() => a.text.length === i + 1 && b.text.length === i + 1, { what: `edit ${i}` })
  }
  assert.equal(a.text.toString(), expected)
  const stream = await storedStream(room, 'doc')
  // A compaction follows each stream_size above the bound: the stream never holds much more than it.
  assert.ok(stream.length <= bound + 2, `the stream holds ${stream.length} entries`)
  assert.equal(stream[0].value.reset, true, 'a snapshot heads the stream')
  const late = await client(room)
  await waitFor(() => late.text.toString() === expected, { what: 'a late joiner from the snapshot' })
})

test('awareness states reach the peers as volatile relays and leave with the provider', async () => {
  const room = await api.newRoom()
  const a = await client(room, { key: 'aw' })
  const b = await client(room, { key: 'aw' })
  a.provider.awareness.setLocalStateField('user', { name: 'Ada' })
  await waitFor(() => b.provider.awareness.getStates().get(a.doc.clientID)?.user?.name === 'Ada', {
    what: "a's awareness in b",
  })
  // b set nothing but its (empty) state: a learns about b when b answers the newcomer.
  b.provider.awareness.setLocalStateField('user', { name: 'Bo' })
  await waitFor(() => a.provider.awareness.getStates().get(b.doc.clientID)?.user?.name === 'Bo', {
    what: "b's awareness in a",
  })
  a.provider.destroy()
  await waitFor(() => !b.provider.awareness.getStates().has(a.doc.clientID), { what: "a's state removed in b" })
})

test('after a server restart (a new, empty history) the document is restored into it', async () => {
  const first = await startServer()
  const proxy = await startProxy(first.port)
  let second
  try {
    const room = await new Api(proxy.url).newRoom()
    const viaProxy = { ...room, socket_url: room.socket_url.replace(/:\d+\//, `:${proxy.port}/`) }
    const a = await client(viaProxy)
    a.text.insert(0, 'before the restart')
    await until('the edit stored', async () => assert.ok((await storedStream(viaProxy, 'doc')).length > 0))
    await first.stop()
    await waitFor(() => !a.db.status.connected, { what: 'the disconnection' })
    a.text.insert(a.text.length, ', and while it was down')
    second = await startServer()
    proxy.setTarget(second.port)
    await waitFor(() => a.db.status.connected && a.provider.synced, { what: 'the reconnection', timeout: 5_000 })
    const late = await client(viaProxy)
    await waitFor(() => late.text.toString() === 'before the restart, and while it was down', {
      what: `the whole document on the new server (${late.text.toString()})`,
    })
  } finally {
    await proxy.close()
    await first.stop()
    await second?.stop()
  }
})
