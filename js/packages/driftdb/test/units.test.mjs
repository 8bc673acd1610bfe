// Unit tests without a server: backoff, reducer rebase, presence expiry, URL building, offline queue.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  backoffDelay,
  DbConnection,
  inspectorUrl,
  PresenceListener,
  Reducer,
  StateListener,
  socketUrl,
} from './helpers.mjs'

test('backoff grows exponentially, is capped, and jitters within bounds', () => {
  const opts = { initialMs: 100, maxMs: 5_000, factor: 2, jitter: 0.5 }
  const top = (a) => backoffDelay(a, opts, () => 0)
  const bottom = (a) => backoffDelay(a, opts, () => 0.999999)
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(top), [100, 200, 400, 800, 1600, 3200])
  assert.equal(top(6), 5_000)
  assert.equal(top(60), 5_000)
  for (let a = 0; a < 10; a++) {
    assert.ok(bottom(a) >= top(a) * 0.5 - 1e-6 && bottom(a) < top(a), `attempt ${a}`)
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(a, opts)
      assert.ok(d >= top(a) * 0.5 && d <= top(a), `random delay ${d} at attempt ${a}`)
    }
  }
  // Jitter really spreads the delays.
  const spread = new Set(Array.from({ length: 20 }, () => Math.round(backoffDelay(3, opts))))
  assert.ok(spread.size > 5, 'jitter')
  assert.equal(backoffDelay(0, { jitter: 0 }), 250, 'defaults')
})

test('the status debug link is the server inspector of the room', () => {
  assert.equal(inspectorUrl('ws://127.0.0.1:8080/room/abc/connect?cbor=true'), 'http://127.0.0.1:8080/inspect?room=abc')
  assert.equal(
    inspectorUrl('wss://db.example.com/drift/room/r_1/connect'),
    'https://db.example.com/drift/inspect?room=r_1',
  )
  assert.equal(inspectorUrl('https://db.example.com:4433/room/r/connect'), 'https://db.example.com:4433/inspect?room=r')
  assert.equal(inspectorUrl('not a url'), null)
  assert.equal(inspectorUrl('ws://h/elsewhere'), null)
})

test('socketUrl sets cbor=true once, however often it is applied', () => {
  const base = 'ws://127.0.0.1:1/room/abc/connect'
  let url = base
  for (let i = 0; i < 5; i++) url = socketUrl(url, true)
  assert.equal(url, `${base}?cbor=true`)
  assert.equal(socketUrl(url, false), base)
  assert.equal(socketUrl(`${base}?debug=false`, true), `${base}?debug=false&cbor=true`)
})

/** A DbConnection stand-in that records sends and lets the test feed messages. */
class FakeDb {
  status = { connected: true }
  connectionId = 1
  sent = []
  subs = new Map()
  send(m, options) {
    if (!this.status.connected && options?.queue === false) return false
    this.sent.push(m)
    return this.status.connected
  }
  subscribe(key, listener, size, hooks) {
    this.subs.set(key, { listener, size, hooks })
  }
  unsubscribe(key) {
    this.subs.delete(key)
  }
  deliver(key, value, seq) {
    this.subs.get(key).listener({ value, seq })
  }
}

test('reducer: optimistic local actions are rebased over remote ones; all converge', () => {
  // Non-commutative actions make order visible: state is a list of action names.
  const reducer = (state, action) => [...state, action]
  const dbA = new FakeDb()
  const dbB = new FakeDb()
  const shown = { a: [], b: [] }
  const a = new Reducer({ key: 'r', reducer, initialValue: [], db: dbA, callback: (s) => (shown.a = s) })
  const b = new Reducer({ key: 'r', reducer, initialValue: [], db: dbB, callback: (s) => (shown.b = s) })
  a.subscribe()
  b.subscribe()
  // The subscription's init: from then on actions go out at once.
  dbA.subs.get('r').hooks.onInit()
  dbB.subs.get('r').hooks.onInit()
  a.dispatch('a1')
  b.dispatch('b1')
  a.dispatch('a2')
  assert.deepEqual(shown.a, ['a1', 'a2'], 'optimistic')
  assert.deepEqual(shown.b, ['b1'])
  // The server orders them b1, a1, a2 and delivers to both.
  const order = [dbB.sent[0], dbA.sent[0], dbA.sent[1]]
  // Before a's own echo arrives, b1 arrives: a shows b1 rebased under its pending a1, a2.
  dbA.deliver('r', order[0].value, 1)
  assert.deepEqual(shown.a, ['b1', 'a1', 'a2'], 'remote action rebased under pending ones')
  assert.equal(a.pending.length, 2)
  for (const [i, m] of order.entries()) {
    if (i > 0) dbA.deliver('r', m.value, i + 1)
    dbB.deliver('r', m.value, i + 1)
  }
  assert.deepEqual(shown.a, ['b1', 'a1', 'a2'])
  assert.deepEqual(shown.b, ['b1', 'a1', 'a2'])
  assert.equal(a.pending.length, 0)
  assert.equal(b.pending.length, 0)
  // Duplicates (replays of seen seqs) are ignored.
  dbA.deliver('r', order[0].value, 1)
  assert.deepEqual(shown.a, ['b1', 'a1', 'a2'])
})

test('reducer: compaction at the confirmed seq, reset entries and epoch reset', () => {
  const reducer = (state, action) => ({ count: state.count + action })
  const db = new FakeDb()
  let shown = null
  const r = new Reducer({
    key: 'c',
    reducer,
    initialValue: { count: 0 },
    sizeThreshold: 2,
    db,
    callback: (s) => (shown = s),
  })
  r.subscribe()
  db.subs.get('c').hooks.onInit()
  db.deliver('c', { apply: 5, i: 'other' }, 3)
  r.dispatch(1)
  assert.deepEqual(shown, { count: 6 })
  db.subs.get('c').size(3)
  const compact = db.sent.at(-1)
  assert.deepEqual(compact.action, { type: 'compact', seq: 3 }, 'compacts at the last confirmed seq')
  assert.deepEqual(
    compact.value,
    { reset: { count: 5 }, applied: {} },
    'with the confirmed state, not the optimistic one',
  )
  db.deliver('c', { reset: { count: 100 } }, 10)
  assert.deepEqual(shown, { count: 101 }, 'reset entry plus the pending action')
  db.subs.get('c').hooks.onReset()
  assert.deepEqual(shown, { count: 1 }, 'epoch reset: initial value plus the pending action')
  assert.equal(r.confirmedSeq, 0)
})

test('presence: peers are tracked, own messages ignored, silent peers expire and the callback is told', () => {
  const db = new FakeDb()
  const calls = []
  const left = []
  const p = new PresenceListener({
    initialState: { x: 0 },
    db,
    clientId: 'me',
    maxPresenceInterval: 1000,
    callback: (presence) => calls.push(Object.keys(presence).sort()),
    onLeave: (c) => left.push(c),
  })
  const t0 = 1_000_000
  p.onMessage({ value: { client: 'me', value: 1 }, seq: 1 }, t0)
  assert.equal(calls.length, 0, 'own message ignored')
  p.onMessage({ value: { client: 'p1', value: { x: 1 } }, seq: 2 }, t0)
  p.onMessage({ value: { client: 'p2', value: { x: 2 } }, seq: 3 }, t0 + 1500)
  assert.deepEqual(calls.at(-1), ['p1', 'p2'])
  assert.deepEqual(p.sweep(t0 + 2000), [], 'not yet expired at exactly 2 intervals')
  assert.deepEqual(p.sweep(t0 + 2001), ['p1'])
  assert.deepEqual(calls.at(-1), ['p2'], 'callback told about the departure')
  assert.deepEqual(left, ['p1'])
  assert.deepEqual(p.sweep(t0 + 3600), ['p2'])
  assert.deepEqual(calls.at(-1), [])
  const n = calls.length
  assert.deepEqual(p.sweep(t0 + 10_000), [])
  assert.equal(calls.length, n, 'no callback when nothing changed')
})

test('presence sends volatile relays by default, plain relays on request', async () => {
  for (const [volatile, expected] of [
    [undefined, true],
    [false, undefined],
  ]) {
    const db = new FakeDb()
    const p = new PresenceListener({ initialState: 'hi', db, clientId: 'me', volatile })
    p.subscribe()
    await new Promise((r) => setTimeout(r, 20))
    p.destroy()
    assert.equal(db.sent.length, 1)
    assert.deepEqual(db.sent[0].action, { type: 'relay' })
    assert.deepEqual(db.sent[0].value, { value: 'hi', client: 'me' })
    assert.equal(db.sent[0].key, '__presence')
    assert.equal(db.sent[0].volatile, expected)
  }
})

test('offline queue: bounded, replace coalesces, volatile and pings dropped', () => {
  const db = new DbConnection()
  const warn = console.warn
  console.warn = () => {}
  try {
    db.connect({
      url: 'ws://127.0.0.1:9/room/x/connect',
      maxQueue: 3,
      WebSocket: class {
        constructor() {
          setTimeout(() => this.onerror?.(), 0)
        }
        close() {}
      },
    })
    db.send({ type: 'push', key: 'v', value: 1, action: { type: 'relay' }, volatile: true })
    db.send({ type: 'ping' })
    assert.equal(db.queue.length, 0)
    db.send({ type: 'push', key: 's', value: 1, action: { type: 'replace' } })
    db.send({ type: 'push', key: 's', value: 2, action: { type: 'replace' } })
    assert.deepEqual(
      db.queue.map((m) => m.value),
      [2],
    )
    for (let i = 0; i < 5; i++) db.send({ type: 'push', key: 'l', value: i, action: { type: 'append' } })
    assert.deepEqual(
      db.queue.map((m) => `${m.key}${m.value}`),
      ['l2', 'l3', 'l4'],
      'oldest dropped',
    )
  } finally {
    db.disconnect()
    console.warn = warn
  }
})

test('reducer: exactly once — in-order sends, resend of what was lost in flight, duplicates skipped', () => {
  const db = new FakeDb()
  let shown = null
  const r = new Reducer({ key: 'r', reducer: (s, a) => s + a, initialValue: 0, db, callback: (s) => (shown = s) })
  r.subscribe()
  const hooks = db.subs.get('r').hooks
  r.dispatch(1)
  assert.equal(db.sent.length, 0, 'held until the subscription is in sync')
  hooks.onInit()
  assert.deepEqual(
    db.sent.map((m) => m.value.n),
    [1],
  )
  r.dispatch(2) // sent on connection 1, lost in flight
  const apply = (n, a, seq) => db.deliver('r', { apply: a, i: r.randId, n }, seq)
  apply(1, 1, 1)
  db.status = { connected: false }
  r.dispatch(4) // offline: held, not queued
  assert.equal(shown, 7)
  assert.deepEqual(
    db.sent.map((m) => m.value.n),
    [1, 2],
  )
  db.status = { connected: true }
  db.connectionId = 2
  r.dispatch(8) // reconnected but not resubscribed yet: held to keep the order
  assert.equal(db.sent.length, 2)
  hooks.onInit() // the resubscription's init held nothing new
  assert.deepEqual(
    db.sent.map((m) => m.value.n),
    [1, 2, 2, 3, 4],
    'the lost action again, then the held ones, in order',
  )
  apply(2, 2, 2)
  apply(3, 4, 3)
  apply(2, 2, 4) // a duplicate: skipped
  assert.equal(r.confirmedState, 7)
  apply(4, 8, 5)
  assert.equal(shown, 15)
  assert.equal(r.pending.length, 0)
  assert.deepEqual(r.applied, { [r.randId]: 4 })
  // Compaction carries the applied numbers; a reset entry confirms pending actions it includes.
  r.dispatch(16)
  r.dispatch(32)
  db.subs.get('r').size(100)
  assert.deepEqual(db.sent.at(-1).value, { reset: 15, applied: { [r.randId]: 4 } })
  db.deliver('r', { reset: 31, applied: { [r.randId]: 5 } }, 9)
  assert.deepEqual(
    r.pending.map((p) => p.n),
    [6],
    'n=5 is in the reset state',
  )
  assert.equal(shown, 63)
  apply(5, 16, 10)
  assert.equal(r.confirmedState, 31, 'a resent action already in a reset is skipped')
  // Another room: pending actions of the old room are dropped, not sent there.
  hooks.onReset({ key: 'r', epoch: '', roomChanged: true })
  assert.deepEqual(r.pending, [])
  assert.equal(shown, 0)
})

test('roomInfoUrl derives GET /room/ID from the socket URL', async () => {
  const { roomInfoUrl } = await import('../dist/connection.js')
  assert.equal(roomInfoUrl('ws://127.0.0.1:8080/room/abc/connect?cbor=true'), 'http://127.0.0.1:8080/room/abc')
  assert.equal(roomInfoUrl('wss://db.example.com/room/abc/connect'), 'https://db.example.com/room/abc')
  assert.equal(roomInfoUrl('not a url'), null)
})

test('state: after a server reset with an empty replay the value is restored; not after a room change', () => {
  const db = new FakeDb()
  const seen = []
  const s = new StateListener({ key: 's', db, callback: (v) => seen.push(v) })
  s.subscribe()
  const { hooks } = db.subs.get('s')
  db.deliver('s', { v: 'remote', i: 'other' }, 1)
  assert.equal(s.state, 'remote')
  db.sent.length = 0
  hooks.onReset({ key: 's', epoch: 'e2', roomChanged: false })
  hooks.onInit()
  assert.deepEqual(
    db.sent.map((m) => [m.action.type, m.value.v]),
    [['replace', 'remote']],
    'restored',
  )
  hooks.onInit()
  assert.equal(db.sent.length, 1, 'once')
  // The replay holds a value: nothing to restore.
  hooks.onReset({ key: 's', epoch: 'e3', roomChanged: false })
  db.deliver('s', { v: 'kept', i: 'other' }, 1)
  hooks.onInit()
  assert.equal(db.sent.length, 1)
  // Another room: never carry the value over.
  hooks.onReset({ key: 's', epoch: '', roomChanged: true })
  hooks.onInit()
  assert.equal(db.sent.length, 1)
  s.destroy()
})
