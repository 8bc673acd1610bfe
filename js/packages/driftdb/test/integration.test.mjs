// Node integration tests against the real server over WebSocket, for every public class.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  Api,
  DbConnection,
  FAST,
  HttpConnection,
  PresenceListener,
  Reducer,
  StateListener,
  collector,
  eventually,
  sleep,
  startProxy,
  startServer,
  useServer,
  waitFor,
} from './helpers.mjs'

const env = useServer()
const { open } = env

async function connect(room, options = {}) {
  const db = new DbConnection()
  open.push(db)
  await db.connect({ room, ...FAST, ...options })
  return db
}

test('Api: newRoom and getRoom', async () => {
  const room = await env.api.newRoom()
  assert.match(room.room, /\S+/)
  assert.match(room.socket_url, /^ws:\/\/.*\/room\/.*\/connect$/)
  assert.match(room.http_url, /^http:\/\/.*\/room\/.*\/send$/)
  const again = await env.api.getRoom(room.room)
  assert.equal(again.room, room.room)
  assert.equal(again.socket_url, room.socket_url)
  // A trailing slash on the API URL is fine.
  assert.equal((await new Api(`${env.server.url}/`).getRoom(room.room)).room, room.room)
})

test('DbConnection (JSON): status, subscribe with replay, live pushes, stream_size, latency', async () => {
  const room = await env.api.newRoom()
  const a = await connect(room)
  assert.deepEqual(a.status, { connected: true, debugUrl: a.status.debugUrl, transport: 'websocket' })
  assert.equal(a.transport, 'websocket')
  a.send({ type: 'push', key: 'k', value: { n: 1 }, action: { type: 'append' } })
  a.send({ type: 'push', key: 'k', value: { n: 2 }, action: { type: 'append' } })
  const b = await connect(room)
  const got = collector()
  const sizes = collector()
  b.subscribe('k', got, sizes)
  await eventually(
    () =>
      assert.deepEqual(
        got.values.map((e) => e.value.n),
        [1, 2],
      ),
    { what: 'replay' },
  )
  a.send({ type: 'push', key: 'k', value: { n: 3 }, action: { type: 'append' } })
  await eventually(
    () =>
      assert.deepEqual(
        got.values.map((e) => e.value.n),
        [1, 2, 3],
      ),
    { what: 'live push' },
  )
  assert.ok(got.values[0].seq < got.values[1].seq && got.values[1].seq < got.values[2].seq)
  b.send({ type: 'push', key: 'k', value: { n: 4 }, action: { type: 'append' } })
  await eventually(() => assert.deepEqual(sizes.values, [4]), { what: 'stream_size for the sender' })
  const ms = await b.testLatency()
  assert.equal(typeof ms, 'number')
  assert.ok(ms >= 0 && ms < 5_000)
})

test('DbConnection: a second listener on a subscribed key gets the replay, the first gets no duplicates', async () => {
  const room = await env.api.newRoom()
  const a = await connect(room)
  const first = collector()
  a.subscribe('k', first)
  a.send({ type: 'push', key: 'k', value: 1, action: { type: 'append' } })
  await eventually(() => assert.equal(first.values.length, 1), { what: 'first value' })
  const second = collector()
  a.subscribe('k', second)
  await eventually(
    () =>
      assert.deepEqual(
        second.values.map((e) => e.value),
        [1],
      ),
    { what: 'replay for listener 2' },
  )
  a.send({ type: 'push', key: 'k', value: 2, action: { type: 'append' } })
  await eventually(
    () =>
      assert.deepEqual(
        second.values.map((e) => e.value),
        [1, 2],
      ),
    { what: 'live push' },
  )
  await sleep(100)
  assert.deepEqual(
    first.values.map((e) => e.value),
    [1, 2],
    'no duplicate for the first listener',
  )
})

test('DbConnection (CBOR): byte strings round-trip as Uint8Array, the URL never grows', async () => {
  const room = await env.api.newRoom()
  const proxy = await startProxy(env.server.port)
  try {
    const url = room.socket_url.replace(`:${env.server.port}/`, `:${proxy.port}/`)
    const a = new DbConnection()
    open.push(a)
    await a.connect(url, { cbor: true, ...FAST })
    const b = await connect(room, { cbor: true })
    const got = collector()
    b.subscribe('bin', got)
    await sleep(50)
    const bytes = new Uint8Array([0, 1, 254, 255])
    a.send({ type: 'push', key: 'bin', value: { bytes, text: 'é', f: 1.5, big: 2 ** 40 }, action: { type: 'append' } })
    await eventually(() => assert.equal(got.values.length, 1), { what: 'binary value' })
    const v = got.values[0].value
    assert.equal(v.bytes.constructor, Uint8Array)
    assert.deepEqual(v, { bytes, text: 'é', f: 1.5, big: 2 ** 40 })
    // The legacy form connect(url, true) too, and reconnects keep one ?cbor=true.
    assert.equal(a.dbUrl, `${url}?cbor=true`)
    for (let i = 0; i < 3; i++) {
      proxy.cutAll()
      await waitFor(() => !a.status.connected, { what: 'disconnect seen' })
      await waitFor(() => a.status.connected, { what: 'reconnect' })
    }
    assert.equal(a.dbUrl, `${url}?cbor=true`)
    const c = new DbConnection()
    open.push(c)
    globalThis.WebSocket = FAST.WebSocket
    await c.connect(url, true)
    assert.equal(c.dbUrl, `${url}?cbor=true`)
    c.disconnect()
  } finally {
    await proxy.close()
  }
})

test('DbConnection: unsubscribe stops deliveries and tells the server when the last listener goes', async () => {
  const room = await env.api.newRoom()
  const a = await connect(room)
  const b = await connect(room)
  const l1 = collector()
  const l2 = collector()
  const wire = collector()
  b.messageListener.addListener(wire)
  b.subscribe('k', l1)
  b.subscribe('k', l2)
  a.send({ type: 'push', key: 'k', value: 1, action: { type: 'append' } })
  await eventually(() => assert.equal(l2.values.length, 1), { what: 'first value' })
  b.unsubscribe('k', l1)
  a.send({ type: 'push', key: 'k', value: 2, action: { type: 'append' } })
  await eventually(() => assert.equal(l2.values.length, 2), { what: 'l2 still subscribed' })
  assert.equal(l1.values.length, 1, 'l1 removed')
  const sent = []
  const realSend = b.connection.send.bind(b.connection)
  b.connection.send = (m) => {
    sent.push(m)
    realSend(m)
  }
  b.unsubscribe('k', l2)
  assert.deepEqual(sent, [{ type: 'unsubscribe', key: 'k' }])
  await sleep(50)
  const before = wire.values.length
  a.send({ type: 'push', key: 'k', value: 3, action: { type: 'relay' } })
  a.send({ type: 'push', key: 'k', value: 4, action: { type: 'append' } })
  // A ping round trip on b after a's pushes: anything for k would have arrived before the pong.
  await sleep(100)
  await b.testLatency()
  assert.deepEqual(
    wire.values.slice(before).filter((m) => m.type === 'push'),
    [],
    'the server sends nothing for k any more',
  )
  assert.equal(l2.values.length, 2)
})

test('DbConnection: reconnect resumes from the last seq; nothing missed or doubled; offline writes delivered', async () => {
  const room = await env.api.newRoom()
  const proxy = await startProxy(env.server.port)
  try {
    const a = await connect({ ...room, socket_url: room.socket_url.replace(`:${env.server.port}/`, `:${proxy.port}/`) })
    const b = await connect(room)
    const gotA = collector()
    const gotB = collector()
    const resets = collector()
    a.subscribe('log', gotA, undefined, { onReset: resets })
    b.subscribe('log', gotB)
    b.send({ type: 'push', key: 'log', value: 'b1', action: { type: 'append' } })
    await eventually(() => assert.equal(gotA.values.length, 1), { what: 'b1 at a' })
    const statuses = collector()
    a.statusListener.addListener(statuses)
    proxy.freeze()
    proxy.cutAll()
    await waitFor(() => !a.status.connected, { what: 'a disconnected' })
    // While a is offline: b appends, a appends (queued).
    b.send({ type: 'push', key: 'log', value: 'b2', action: { type: 'append' } })
    b.send({ type: 'push', key: 'log', value: 'b3', action: { type: 'append' } })
    a.send({ type: 'push', key: 'log', value: 'a1', action: { type: 'append' } })
    assert.equal(a.queue.length, 1)
    await sleep(200)
    proxy.freeze(false)
    await waitFor(() => a.status.connected, { what: 'a reconnected', timeout: 5_000 })
    await eventually(
      () =>
        assert.deepEqual(
          gotA.values.map((e) => e.value),
          ['b1', 'b2', 'b3', 'a1'],
        ),
      {
        what: 'a caught up',
      },
    )
    await eventually(
      () =>
        assert.deepEqual(
          gotB.values.map((e) => e.value),
          ['b1', 'b2', 'b3', 'a1'],
        ),
      {
        what: 'b got the offline write',
      },
    )
    assert.equal(resets.values.length, 0, 'same epoch: no reset')
    assert.ok(statuses.values.some((s) => s.connected === false))
    assert.equal(statuses.values.at(-1).connected, true)
  } finally {
    await proxy.close()
  }
})

test('DbConnection: a dead connection (no pong) is detected and replaced', async () => {
  const room = await env.api.newRoom()
  const proxy = await startProxy(env.server.port)
  try {
    const a = await connect(
      { ...room, socket_url: room.socket_url.replace(`:${env.server.port}/`, `:${proxy.port}/`) },
      { pingIntervalMs: 100, deadAfterMs: 400 },
    )
    const got = collector()
    a.subscribe('k', got)
    proxy.freeze() // bytes vanish, nothing closes
    const t0 = Date.now()
    await waitFor(() => !a.status.connected, { what: 'dead connection detected', timeout: 3_000 })
    assert.ok(Date.now() - t0 >= 300, 'not before the silence limit')
    proxy.freeze(false)
    await waitFor(() => a.status.connected, { what: 'reconnected', timeout: 3_000 })
    a.send({ type: 'push', key: 'k', value: 'after', action: { type: 'append' } })
    await eventually(
      () =>
        assert.deepEqual(
          got.values.map((e) => e.value),
          ['after'],
        ),
      { what: 'works again' },
    )
  } finally {
    await proxy.close()
  }
})

test('DbConnection: server restart (new epoch) resets keys, replays from 0, keeps offline writes', async () => {
  const first = await startServer()
  const proxy = await startProxy(first.port)
  let second
  try {
    const proxApi = new Api(proxy.url)
    const room = await proxApi.newRoom()
    const a = await connect({ ...room, socket_url: room.socket_url.replace(/:\d+\//, `:${proxy.port}/`) })
    const got = collector()
    const resets = []
    a.resetListener.addListener((e) => resets.push(e))
    const hookResets = collector()
    a.subscribe('k', got, undefined, { onReset: () => hookResets({}) })
    const sa = new StateListener({ key: 'state', db: a, callback: () => {} })
    sa.subscribe()
    sa.setStateOptimistic({ kept: true })
    for (let i = 1; i <= 5; i++) a.send({ type: 'push', key: 'k', value: `old${i}`, action: { type: 'append' } })
    await eventually(() => assert.equal(got.values.length, 5), { what: 'old values' })
    await first.stop()
    await waitFor(() => !a.status.connected, { what: 'disconnect on server stop' })
    a.send({ type: 'push', key: 'k', value: 'offline', action: { type: 'append' } })
    second = await startServer()
    proxy.setTarget(second.port)
    await waitFor(() => a.status.connected, { what: 'reconnect to the new server', timeout: 5_000 })
    await eventually(() => assert.deepEqual(resets.map((e) => e.key).sort(), ['k', 'state']), {
      what: 'a reset event per key',
    })
    assert.equal(resets[0].roomChanged, false)
    assert.equal(hookResets.values.length, 1)
    // The offline write reached the new server, and the key replays from 0 of the new history.
    const http = new HttpConnection(`${proxy.url}/room/${room.room}/send`)
    const init = await http.send({ type: 'get', key: 'k', seq: 0 })
    assert.deepEqual(
      init.data.map((e) => e.value),
      ['offline'],
    )
    const b = await connect({ ...room, socket_url: room.socket_url.replace(/:\d+\//, `:${second.port}/`) })
    // Shared state survives: the client restores its value into the new, empty history.
    const seenB = collector()
    const sb = new StateListener({ key: 'state', db: b, callback: seenB })
    sb.subscribe()
    await eventually(() => assert.deepEqual(seenB.values.at(-1), { kept: true }), { what: 'state restored' })
    sa.destroy()
    sb.destroy()
    b.send({ type: 'push', key: 'k', value: 'new', action: { type: 'append' } })
    await eventually(
      () => {
        const after = got.values.slice(5).map((e) => e.value)
        assert.deepEqual(after, ['offline', 'new'])
      },
      { what: 'replay from 0 of the new epoch, then live' },
    )
  } finally {
    await proxy.close()
    await first.stop()
    await second?.stop()
  }
})

test('HttpConnection: push, get, ping', async () => {
  const room = await env.api.newRoom()
  const http = new HttpConnection(room.http_url)
  assert.equal(await http.send({ type: 'push', key: 'h', value: 1, action: { type: 'append' } }), null)
  assert.deepEqual(await http.send({ type: 'push', key: 'h', value: 2, action: { type: 'append' } }), {
    type: 'stream_size',
    key: 'h',
    size: 2,
  })
  const init = await http.send({ type: 'get', key: 'h', seq: 0 })
  assert.equal(init.type, 'init')
  assert.deepEqual(
    init.data.map((e) => e.value),
    [1, 2],
  )
  assert.equal((await http.send({ type: 'ping', nonce: 3 })).type, 'pong')
  await assert.rejects(new HttpConnection(`${env.server.url}/room/%20/send`).send({ type: 'ping' }), /HTTP error/)
})

test('StateListener: two clients share a value', async () => {
  const room = await env.api.newRoom()
  const a = await connect(room)
  const b = await connect(room)
  const seenA = collector()
  const seenB = collector()
  const sa = new StateListener({ key: 's', db: a, callback: seenA })
  const sb = new StateListener({ key: 's', db: b, callback: seenB })
  sa.subscribe()
  sb.subscribe()
  await sleep(50)
  sa.setStateOptimistic({ x: 1 })
  assert.deepEqual(seenA.values.at(-1), { x: 1 }, 'optimistic')
  await eventually(() => assert.deepEqual(seenB.values.at(-1), { x: 1 }), { what: 'b sees a' })
  assert.deepEqual(sb.state, { x: 1 })
  // Debounced bursts end on the last value.
  for (let i = 0; i < 20; i++) sb.setStateOptimistic({ x: i })
  await eventually(() => assert.deepEqual(seenA.values.at(-1), { x: 19 }), { what: 'a sees the last of the burst' })
  // A late joiner gets the current value.
  const c = await connect(room)
  const seenC = collector()
  const sc = new StateListener({ key: 's', db: c, callback: seenC })
  sc.subscribe()
  await eventually(() => assert.deepEqual(seenC.values.at(-1), { x: 19 }), { what: 'late joiner' })
  sa.destroy()
  sb.destroy()
  sc.destroy()
})

test('PresenceListener: peers see each other, and a peer leaving is reported', async () => {
  const room = await env.api.newRoom()
  const a = await connect(room)
  const b = await connect(room)
  const seenA = []
  const left = []
  const pa = new PresenceListener({
    initialState: { name: 'a' },
    db: a,
    clientId: 'client-a',
    maxPresenceInterval: 150,
    callback: (p) => seenA.push(p),
    onLeave: (c) => left.push(c),
  })
  const pb = new PresenceListener({
    initialState: { name: 'b' },
    db: b,
    clientId: 'client-b',
    maxPresenceInterval: 150,
  })
  pa.subscribe()
  pb.subscribe()
  await eventually(() => assert.deepEqual(seenA.at(-1)?.['client-b']?.value, { name: 'b' }), { what: 'a sees b' })
  assert.equal(seenA.at(-1)['client-a'], undefined, 'not itself')
  pb.updateState({ name: 'b2' })
  await eventually(() => assert.deepEqual(seenA.at(-1)['client-b'].value, { name: 'b2' }), { what: 'update' })
  pb.destroy()
  await eventually(() => assert.deepEqual(Object.keys(seenA.at(-1)), []), { what: 'b gone', timeout: 2_000 })
  assert.deepEqual(left, ['client-b'])
  pa.destroy()
})

test('Reducer: concurrent dispatches on two clients converge, with compaction', async () => {
  const room = await env.api.newRoom()
  const a = await connect(room)
  const b = await connect(room)
  // Order-sensitive reducer: a bounded log of actions plus a sum.
  const reducer = (s, action) => ({ sum: s.sum * 3 + action, n: s.n + 1 })
  const shown = { a: null, b: null }
  const ra = new Reducer({
    key: 'r',
    reducer,
    initialValue: { sum: 0, n: 0 },
    sizeThreshold: 5,
    db: a,
    callback: (s) => (shown.a = s),
  })
  const rb = new Reducer({
    key: 'r',
    reducer,
    initialValue: { sum: 0, n: 0 },
    sizeThreshold: 5,
    db: b,
    callback: (s) => (shown.b = s),
  })
  ra.subscribe()
  rb.subscribe()
  await sleep(50)
  for (let i = 0; i < 20; i++) {
    ra.dispatch(1)
    rb.dispatch(2)
    if (i % 5 === 0) await sleep(5)
  }
  await eventually(
    () => {
      assert.equal(shown.a.n, 40)
      assert.deepEqual(shown.a, shown.b)
      assert.equal(ra.pending.length + rb.pending.length, 0)
    },
    { what: 'convergence' },
  )
  // The stream was compacted, and a late joiner reaches the same state.
  const c = await connect(room)
  let shownC = null
  const rc = new Reducer({ key: 'r', reducer, initialValue: { sum: 0, n: 0 }, db: c, callback: (s) => (shownC = s) })
  rc.subscribe()
  await eventually(() => assert.deepEqual(shownC, shown.a), { what: 'late joiner converges' })
  const init = await new HttpConnection(room.http_url).send({ type: 'get', key: 'r', seq: 0 })
  assert.ok(init.data.length < 40, `compacted (${init.data.length} entries)`)
  ra.destroy()
  rb.destroy()
  rc.destroy()
})

test('volatile relays are delivered over WebSocket and not stored', async () => {
  const room = await env.api.newRoom()
  const a = await connect(room)
  const b = await connect(room)
  const got = collector()
  b.subscribe('cursor', got)
  await sleep(50)
  for (let i = 0; i < 10; i++)
    a.send({ type: 'push', key: 'cursor', value: { x: i }, action: { type: 'relay' }, volatile: true })
  await eventually(() => assert.deepEqual(got.values.at(-1)?.value, { x: 9 }), { what: 'last cursor' })
  const seqs = got.values.map((e) => e.seq)
  assert.deepEqual(
    seqs,
    [...seqs].sort((x, y) => x - y),
    'increasing',
  )
  const init = await new HttpConnection(room.http_url).send({ type: 'get', key: 'cursor', seq: 0 })
  assert.deepEqual(init.data, [])
})

test('Reducer: an action lost in flight on a dying connection is sent again, once, after reconnecting', async () => {
  const room = await env.api.newRoom()
  const proxy = await startProxy(env.server.port)
  try {
    const a = await connect({ ...room, socket_url: room.socket_url.replace(`:${env.server.port}/`, `:${proxy.port}/`) })
    const b = await connect(room)
    const reducer = (s, x) => [...s, x]
    const shown = { a: null, b: null }
    const ra = new Reducer({ key: 'r', reducer, initialValue: [], db: a, callback: (s) => (shown.a = s) })
    const rb = new Reducer({ key: 'r', reducer, initialValue: [], db: b, callback: (s) => (shown.b = s) })
    ra.subscribe()
    rb.subscribe()
    ra.dispatch('before')
    await eventually(() => assert.deepEqual(shown.b, ['before']), { what: 'first action' })
    proxy.freeze() // bytes written now are lost, though the socket looks open
    ra.dispatch('lost in flight')
    await sleep(100)
    proxy.cutAll()
    proxy.freeze(false)
    await waitFor(() => !a.status.connected, { what: 'a sees the cut' })
    await waitFor(() => a.status.connected, { what: 'a reconnected' })
    rb.dispatch('from b')
    await eventually(
      () => {
        assert.equal(shown.a.length, 3)
        assert.deepEqual(shown.a, shown.b)
        assert.equal(ra.pending.length, 0)
      },
      { what: 'convergence with the lost action resent' },
    )
    assert.deepEqual([...shown.a].sort(), ['before', 'from b', 'lost in flight'])
    const init = await new HttpConnection(room.http_url).send({ type: 'get', key: 'r', seq: 0 })
    assert.equal(init.data.filter((e) => e.value.apply === 'lost in flight').length, 1, 'applied exactly once')
    ra.destroy()
    rb.destroy()
  } finally {
    await proxy.close()
  }
})

test('Reducer chaos: cuts and in-flight losses on three clients; every action applied exactly once; all converge', async () => {
  const room = await env.api.newRoom()
  const proxies = [
    await startProxy(env.server.port),
    await startProxy(env.server.port),
    await startProxy(env.server.port),
  ]
  try {
    const dbs = []
    for (const p of proxies) {
      dbs.push(await connect({ ...room, socket_url: room.socket_url.replace(`:${env.server.port}/`, `:${p.port}/`) }))
    }
    // Counts how often each action was applied: exactly-once shows as all ones.
    const reducer = (s, id) => ({ ...s, [id]: (s[id] ?? 0) + 1 })
    const shown = [null, null, null]
    const reducers = dbs.map(
      (db, k) =>
        new Reducer({ key: 'chaos', reducer, initialValue: {}, sizeThreshold: 8, db, callback: (s) => (shown[k] = s) }),
    )
    for (const r of reducers) r.subscribe()
    let seed = 12345
    const rnd = (n) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const dispatched = []
    for (let step = 0; step < 150; step++) {
      const k = rnd(3)
      const id = `c${k}-${step}`
      reducers[k].dispatch(id)
      dispatched.push(id)
      if (step % 15 === 7) {
        // Bytes in flight both ways vanish, then the connection drops.
        const p = proxies[rnd(3)]
        p.freeze()
        await sleep(20 + rnd(40))
        p.cutAll()
        p.freeze(false)
      }
      await sleep(rnd(8))
    }
    await eventually(
      () => {
        for (const r of reducers) assert.equal(r.pending.length, 0, 'nothing pending')
        assert.deepEqual(shown[1], shown[0])
        assert.deepEqual(shown[2], shown[0])
        assert.deepEqual(Object.keys(shown[0]).sort(), [...dispatched].sort(), 'every action applied')
        assert.deepEqual(
          Object.entries(shown[0]).filter(([, n]) => n !== 1),
          [],
          'none applied twice',
        )
      },
      { what: 'exactly-once convergence', timeout: 20_000 },
    )
    for (const r of reducers) r.destroy()
  } finally {
    for (const p of proxies) await p.close()
  }
})
