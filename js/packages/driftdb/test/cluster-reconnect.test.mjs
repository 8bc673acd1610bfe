// Reconnection in a cluster (real nats-server and three `driftdb serve --cluster` nodes): a client that got its room
// through one node's API and connected straight to the owner follows the room to its new owner when the owner dies,
// by reading the room info again from the API base it used.

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { test } from 'node:test'
import { hostOf, startCluster } from '../../../test-support/cluster.mjs'
import { Api, DbConnection, FAST, eventually, startServer, waitFor } from './helpers.mjs'

/** The cluster of the running test (each test kills a node, so each starts its own). */
let cluster

/**
 * A room owned by one node, looked up through another node's API; `via` is that other node, `third` the last one.
 */
async function roomThroughAnotherNode(room) {
  const owner = await cluster.ownerOf(room)
  const [via, third] = cluster.nodes.filter((node) => node !== owner)
  const result = await new Api(via.url).getRoom(room)
  assert.equal(hostOf(result.socket_url), hostOf(owner.url), 'room info names the owner')
  return { owner, via, third, result }
}

/** Subscribes `db` to `key`, recording the values it is handed. */
function record(db, key) {
  const values = []
  db.subscribe(key, ({ value }) => values.push(value))
  return values
}

const append = (db, key, value) => db.send({ type: 'push', action: { type: 'append' }, key, value })

async function followsTheRoom(room, connectOptions) {
  const open = []
  cluster = await startCluster({ nodes: 3 })
  try {
    await follow(room, connectOptions, open)
  } catch (error) {
    cluster.printLogs('cluster log of a failed test')
    throw error
  } finally {
    for (const db of open) db.disconnect()
    await cluster.stop()
  }
}

async function follow(room, connectOptions, open) {
  const { owner, via, third, result } = await roomThroughAnotherNode(room)
  const db = new DbConnection()
  open.push(db)
  await db.connect({ ...FAST, ...connectOptions(result, via) })
  assert.equal(hostOf(db.dbUrl), hostOf(owner.url), 'connected straight to the owner')
  const values = record(db, 'k')
  let resets = 0
  db.resetListener.addListener(() => resets++)
  append(db, 'k', 'before')
  await eventually(() => assert.deepEqual(values, ['before']), { what: 'the first write' })
  const connections = db.connectionId

  await owner.kill()
  await waitFor(() => db.connectionId > connections && db.status.connected, {
    what: 'the client to connect again',
    timeout: 15_000,
  })
  const survivors = [hostOf(via.url), hostOf(third.url)]
  assert.ok(survivors.includes(hostOf(db.dbUrl)), `reconnected to a survivor, not ${db.dbUrl}`)
  const info = await cluster.roomInfo(room, third)
  assert.equal(hostOf(db.dbUrl), hostOf(info.socket_url), 'straight to the new owner named by the room info')
  assert.equal(db.status.connected && new URL(db.status.debugUrl).host, hostOf(info.socket_url))

  // Memory storage: the new owner starts the room afresh, under a new epoch; the client resets and writes on.
  await eventually(() => assert.ok(resets >= 1, 'the new epoch was noticed'), { what: 'a reset' })
  append(db, 'k', 'after')
  await eventually(() => assert.equal(values.at(-1), 'after'), { what: 'a write on the new owner' })
  // It really is in the new owner's room: a fresh client there sees it.
  const other = new DbConnection()
  open.push(other)
  await other.connect({ ...FAST, room: info })
  const seen = record(other, 'k')
  await eventually(() => assert.deepEqual(seen, ['after']), { what: "the write in the new owner's room" })
}

test('a client reconnects to the new owner named by the Api it got the room from', { timeout: 20_000 }, () =>
  followsTheRoom('follow-the-api', (result) => ({ room: result })),
)

test(
  'the api option names where to ask again, for a room result that did not come from an Api',
  {
    timeout: 20_000,
  },
  () => followsTheRoom('follow-the-option', (result, via) => ({ room: { ...result }, api: via.url })),
)

test(
  'a room that moved is the same room: connecting again with its first room result resets nothing',
  {
    timeout: 20_000,
  },
  async () => {
    // Two plain servers stand for the room's old and new node; a small API answers with the new one's room info.
    const [first, second] = [await startServer(), await startServer()]
    const moved = await new Api(second.url).getRoom('moved')
    const api = createServer((request, response) => {
      response.setHeader('content-type', 'application/json')
      response.end(JSON.stringify(request.url === '/room/moved' ? moved : {}))
    })
    await new Promise((resolve) => api.listen(0, '127.0.0.1', resolve))
    const apiUrl = `http://127.0.0.1:${api.address().port}/`
    const db = new DbConnection()
    try {
      const room = await new Api(first.url).getRoom('moved')
      await db.connect({ ...FAST, room, api: apiUrl })
      const values = record(db, 'k')
      const resets = []
      db.resetListener.addListener((event) => resets.push(event))
      append(db, 'k', 'on the first')
      await eventually(() => assert.deepEqual(values, ['on the first']), { what: 'a write on the first server' })

      await first.kill()
      await waitFor(() => db.status.connected && hostOf(db.dbUrl) === hostOf(second.url), {
        what: 'the client to move to the second server',
        timeout: 10_000,
      })
      await eventually(() => assert.equal(resets.length, 1), { what: 'the new epoch' })
      assert.equal(resets[0].roomChanged, false, 'the same room, under a new epoch')

      // The app connects again with the room result it had (e.g. a provider re-rendering): not another room.
      await db.connect({ ...FAST, room, api: apiUrl })
      await waitFor(() => db.status.connected && hostOf(db.dbUrl) === hostOf(second.url), {
        what: 'the client back on the second server',
        timeout: 10_000,
      })
      assert.deepEqual(
        resets.map((event) => event.roomChanged),
        [false],
        'no room change reset',
      )
      append(db, 'k', 'on the second')
      await eventually(() => assert.equal(values.at(-1), 'on the second'), { what: 'a write on the second server' })
    } finally {
      db.disconnect()
      api.close()
      await first.kill()
      await second.stop()
    }
  },
)
