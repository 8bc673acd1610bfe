// HttpConnection: one client message per POST to the room's http_url, the direct reply as JSON.

import { HttpConnection, assert, eventually, pick, seqValues, useServer, withTimeout } from './helpers.mjs'

const serverTest = useServer()

serverTest('HTTP push reaches WebSocket subscribers; HTTP get and ping answer directly', async (scope) => {
  const room = await scope.newRoom()
  const http = new HttpConnection(room.http_url)
  const send = (message) => withTimeout(http.send(message), `HTTP ${message.type}`)

  const db = await scope.connect(room.socket_url)
  const live = await scope.subscribe(db, 'h')

  // One stored entry: no stream_size, so the reply is null. Two: the sender is told the size.
  const append = (value) => send({ type: 'push', key: 'h', value, action: { type: 'append' } })
  assert.equal(await append({ from: 'http', n: 1 }), null)
  assert.deepEqual(pick(await append({ from: 'http', n: 2 }), 'type', 'key', 'size'), {
    type: 'stream_size',
    key: 'h',
    size: 2,
  })

  await eventually(() => assert.equal(live.values.length, 2), { what: 'the HTTP pushes at the subscriber' })
  assert.deepEqual(
    live.values.map((v) => v.value),
    [
      { from: 'http', n: 1 },
      { from: 'http', n: 2 },
    ],
  )
  const [first, second] = live.values
  assert.ok(Number.isInteger(first.seq) && first.seq >= 1 && second.seq > first.seq, 'bad seqs')

  const init = await send({ type: 'get', key: 'h', seq: 0 })
  assert.deepEqual(pick(init, 'type', 'key'), { type: 'init', key: 'h' })
  assert.deepEqual(seqValues(init.data), seqValues(live.values))

  // Only entries after the given seq are replayed.
  const after = await send({ type: 'get', key: 'h', seq: first.seq })
  assert.deepEqual(seqValues(after.data), seqValues([second]))

  const empty = await send({ type: 'get', key: 'never-written', seq: 0 })
  assert.deepEqual(pick(empty, 'type', 'key', 'data'), { type: 'init', key: 'never-written', data: [] })

  const pong = await send({ type: 'ping', nonce: 42 })
  assert.deepEqual(pick(pong, 'type', 'nonce'), { type: 'pong', nonce: 42 })
})
