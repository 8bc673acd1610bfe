// Compactor / Compactable (driftdb 1.0.12's `dist/compactor`) against the real server: two clients converge, the
// stream is compacted into a `{reset}` entry, a late joiner rebuilds the state from it. Once with a counter (both
// optimistic and confirmed-only), once with a Yjs document in `crdt` mode over CBOR, as the reference's CRDT demo.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as Y from 'yjs'
import { until } from '../../../test-support/wait.mjs'
import { Compactable, Compactor, DbConnection, FAST, HttpConnection, eventually, useServer } from './helpers.mjs'

const env = useServer()
const THRESHOLD = 10

async function connect(room, options = {}) {
  const db = new DbConnection()
  env.open.push(db)
  await db.connect({ room, ...FAST, ...options })
  return db
}

/** The key's stored stream, read over HTTP (which does not subscribe). */
async function storedStream(room, key) {
  const init = await new HttpConnection(room.http_url).send({ type: 'get', key, seq: 0 })
  assert.equal(init.type, 'init')
  return init.data
}

class Counter extends Compactable {
  constructor(optimistic) {
    super()
    this.optimistic = optimistic
  }
  initialState() {
    return { count: 0 }
  }
  applyAction(state, by) {
    return { count: state.count + by }
  }
}

/** A Compactor with its callback's latest state. */
function compactor(db, key, compactable) {
  const seen = { state: undefined, calls: 0 }
  const c = new Compactor({
    db,
    key,
    compactable,
    sizeThreshold: THRESHOLD,
    callback: (state) => {
      seen.state = state
      seen.calls++
    },
  })
  return { c, seen }
}

for (const optimistic of [true, false]) {
  test(`Compactor with a counter (optimistic: ${optimistic}): converges, compacts, late joiner`, async () => {
    const room = await env.api.newRoom()
    const [dbA, dbB] = [await connect(room), await connect(room)]
    const a = compactor(dbA, 'counter', new Counter(optimistic))
    const b = compactor(dbB, 'counter', new Counter(optimistic))
    a.c.subscribe()
    b.c.subscribe()
    await eventually(() => assert.ok(a.c.lastConfirmedState && b.c.lastConfirmedState), { what: 'subscribed' })

    for (let i = 0; i < 25; i++) {
      a.c.dispatch(1)
      b.c.dispatch(2)
    }
    if (optimistic) assert.equal(a.seen.state.count >= 25, true, 'optimistic: local actions show at once')
    await eventually(
      () => {
        assert.deepEqual(a.c.state, { count: 75 })
        assert.deepEqual(b.c.state, { count: 75 })
        assert.deepEqual(a.seen.state, { count: 75 })
      },
      { what: 'both clients at 75' },
    )

    // Compaction: the stream starts with a {reset} entry and stays near the threshold.
    await until('a compacted stream', async () => {
      const stream = await storedStream(room, 'counter')
      assert.ok('reset' in stream[0].value, `first entry is a reset: ${JSON.stringify(stream[0])}`)
      assert.ok(stream.length <= THRESHOLD + 1, `compacted: ${stream.length} entries`)
    })

    const late = compactor(await connect(room), 'counter', new Counter(optimistic))
    late.c.subscribe()
    await eventually(() => assert.deepEqual(late.seen.state, { count: 75 }), { what: 'the late joiner at 75' })
    for (const x of [a, b, late]) x.c.destroy()
  })
}

/** The reference CRDT demo's Compactable: a Yjs document, updates as actions, the encoded state as reset. */
class YDocCompactable extends Compactable {
  optimistic = true
  crdt = true
  initialState() {
    return new Y.Doc()
  }
  applyAction(doc, update) {
    Y.applyUpdate(doc, update, 'driftdb')
    return doc
  }
  packState(doc) {
    return Y.encodeStateAsUpdate(doc)
  }
  unpackState(update) {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, update, 'driftdb')
    return doc
  }
}

/** A Compactor over a Y.Doc whose local edits are dispatched (remote ones, applied with origin 'driftdb', are not). */
function yjsClient(db) {
  const client = compactor(db, 'doc', new YDocCompactable())
  client.c.subscribe()
  client.c.state.on('update', (update, origin) => {
    if (origin !== 'driftdb') client.c.dispatch(update)
  })
  client.text = () => client.c.state.getText('t').toString()
  return client
}

test('Compactor in crdt mode with a Yjs document over CBOR: converges, compacts, late joiner', async () => {
  const room = await env.api.newRoom()
  const a = yjsClient(await connect(room, { cbor: true }))
  const b = yjsClient(await connect(room, { cbor: true }))
  await eventually(() => assert.ok(a.c.lastConfirmedState && b.c.lastConfirmedState), { what: 'subscribed' })

  // Concurrent edits: 15 each, at the start of the text, so both clients' inserts interleave.
  for (let i = 0; i < 15; i++) {
    a.c.state.getText('t').insert(0, 'a')
    b.c.state.getText('t').insert(0, 'b')
  }
  await eventually(
    () => {
      assert.equal(a.text().length, 30)
      assert.equal(b.text(), a.text())
    },
    { what: 'both documents hold the same 30 characters' },
  )
  assert.equal([...a.text()].filter((ch) => ch === 'a').length, 15)

  await until('a compacted stream', async () => {
    const stream = await storedStream(room, 'doc')
    assert.ok('reset' in stream[0].value, 'first entry is a reset')
    assert.ok(stream.length <= THRESHOLD + 1, `compacted: ${stream.length} entries`)
  })

  const late = compactor(await connect(room, { cbor: true }), 'doc', new YDocCompactable())
  late.c.subscribe()
  await eventually(() => assert.equal(late.c.state.getText('t').toString(), a.text()), { what: 'the late joiner' })
  for (const x of [a, b, late]) x.c.destroy()
})
