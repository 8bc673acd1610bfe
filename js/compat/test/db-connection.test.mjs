// DbConnection over JSON: subscriptions, the three storing actions, replay, stream_size, status, latency.

import { assert, assertIncreasingSeqs, seqValues, useServer, waitFor, withTimeout } from './helpers.mjs'

const serverTest = useServer()

serverTest('status listener reports the connection as connected', async (scope) => {
  const room = await scope.newRoom()
  const db = scope.newConnection()
  const statuses = []
  db.statusListener.addListener((status) => statuses.push(status))
  await withTimeout(db.connect(room.socket_url), 'connect()')

  assert.equal(statuses.at(-1)?.connected, true, `statuses seen: ${JSON.stringify(statuses)}`)
  assert.equal(db.status.connected, true)
})

serverTest('testLatency() resolves to a number (ping/pong)', async (scope) => {
  const room = await scope.newRoom()
  const db = await scope.connect(room.socket_url)
  const latency = await withTimeout(db.testLatency(), 'testLatency()')
  assert.equal(typeof latency, 'number')
  assert.ok(latency >= 0 && Number.isFinite(latency), `latency ${latency}`)
  assert.ok(scope.messages(db).some((m) => m.type === 'pong'), 'no pong message received')
})

serverTest('pushes reach subscribers in order and late subscribers get the stored replay', async (scope) => {
  const room = await scope.newRoom()
  const writer = await scope.connect(room.socket_url)
  const early = await scope.connect(room.socket_url)

  const keys = { append: 'log', replace: 'state', relay: 'chat' }
  const live = {}
  for (const [action, key] of Object.entries(keys)) {
    live[action] = await scope.subscribe(early, key)
    assert.deepEqual(live[action].values, [], `key ${key} was never written, replay should be empty`)
  }

  // Interleave the keys: seq is one counter for the whole room.
  const pushes = [
    ['append', { n: 1 }],
    ['replace', { v: 'first' }],
    ['relay', { msg: 'hello' }],
    ['append', { n: 2 }],
    ['replace', { v: 'second' }],
    ['relay', { msg: 'world' }],
    ['append', { n: 3 }],
  ]
  for (const [action, value] of pushes) {
    writer.send({ type: 'push', key: keys[action], value, action: { type: action } })
  }

  const sent = (action) => pushes.filter(([a]) => a === action).map(([, value]) => value)
  for (const action of Object.keys(keys)) {
    await waitFor(() => live[action].values.length >= sent(action).length, {
      what: `the ${action} pushes at the early subscriber`,
    })
    assert.deepEqual(
      live[action].values.map((v) => v.value),
      sent(action),
    )
  }

  // All deliveries, in arrival order, carry increasing seqs across keys.
  const deliveries = scope.messages(early).filter((m) => m.type === 'push')
  assert.equal(deliveries.length, pushes.length)
  assertIncreasingSeqs(deliveries, 'pushes seen by the early subscriber')
  for (const message of deliveries) assert.equal('action' in message, false, 'push delivery carries action')

  // The sender gets stream_size for the appended key once it holds more than one entry; others never do.
  await waitFor(
    () => scope.messages(writer).some((m) => m.type === 'stream_size' && m.key === keys.append && m.size === 3),
    { what: 'stream_size 3 for the appended key at the sender' },
  )
  assert.deepEqual(
    scope.messages(early).filter((m) => m.type === 'stream_size'),
    [],
    'a subscriber that did not push received stream_size',
  )

  // A late subscriber replays what is stored: append keeps all, replace the last, relay nothing.
  const late = await scope.connect(room.socket_url)
  const replay = {}
  for (const [action, key] of Object.entries(keys)) replay[action] = (await scope.subscribe(late, key)).values

  assert.deepEqual(seqValues(replay.append), seqValues(live.append.values), 'append replay should hold every entry')
  assert.deepEqual(
    seqValues(replay.replace),
    seqValues(live.replace.values.slice(-1)),
    'replace replay should hold only the last entry',
  )
  assert.deepEqual(replay.relay, [], 'relay must not be stored')

  // Pushing does not subscribe: the writer never got its own pushes back.
  assert.deepEqual(
    scope.messages(writer).filter((m) => m.type === 'push'),
    [],
    'the writer received pushes without subscribing',
  )
})
