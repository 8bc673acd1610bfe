// The published 1.0.12 client against a cluster (real nats-server and three `driftdb serve --cluster` nodes): a client
// connected to a node that does not own its room is forwarded to the owner, and after the owner is killed, the same
// URL is served by the room's new owner.

import { after, before, test } from 'node:test'
import { hostOf, startCluster } from '../../test-support/cluster.mjs'
import { DbConnection, assert, eventually, waitFor, withTimeout } from './helpers.mjs'

let cluster
const connections = []

before(async () => {
  cluster = await startCluster({ nodes: 3 })
})

after(async () => {
  for (const db of connections) {
    clearTimeout(db.reconnectLoopHandle)
    db.disconnect()
  }
  await cluster?.stop()
})

/** A connected 1.0.12 DbConnection recording its messages, subscribed to `key` (values in `values`). */
async function client(url, key) {
  const db = new DbConnection()
  // The 1.0.12 reconnect loop drops the promise of each attempt (`this.connect(dbUrl, cbor)` in `onclose`). While
  // nobody owns the room, a node refuses the upgrade (503) and that promise rejects: a console message in a browser,
  // an unhandled rejection (a failure) under node:test. Catch it here; the loop itself is untouched.
  const connect = db.connect.bind(db)
  db.connect = (...args) => {
    const attempt = connect(...args)
    attempt.catch(() => {})
    return attempt
  }
  connections.push(db)
  const messages = []
  const values = []
  db.messageListener.addListener((m) => messages.push(m))
  await withTimeout(db.connect(url), `1.0.12 client connects to ${url}`)
  db.subscribe(key, (sv) => values.push(sv))
  await waitFor(() => messages.some((m) => m.type === 'init' && m.key === key), { what: `init of ${key}` })
  return { db, messages, values }
}

const push = (db, key, value) => db.send({ type: 'push', action: { type: 'append' }, key, value })

/** The room's owner and the two other nodes. */
async function ownerAndOthers(room) {
  const owner = await cluster.ownerOf(room)
  return { owner, others: cluster.nodes.filter((node) => node !== owner) }
}

async function withLogs(body) {
  try {
    await body()
  } catch (error) {
    cluster?.printLogs('cluster log of a failed test')
    throw error
  }
}

test(
  'a 1.0.12 client on a node that does not own the room round-trips with one on the owner',
  { timeout: 20_000 },
  () =>
    withLogs(async () => {
      const room = 'compat-forwarded'
      const { owner, others } = await ownerAndOthers(room)
      const direct = await client(cluster.socketUrlOn(room, owner), 'k')
      const forwarded = await client(cluster.socketUrlOn(room, others[0]), 'k')

      const sent = []
      for (let i = 0; i < 5; i++) {
        for (const [name, c] of [
          ['forwarded', forwarded],
          ['direct', direct],
        ]) {
          const value = `${name}-${i}`
          sent.push(value)
          push(c.db, 'k', value)
        }
      }
      await eventually(
        () => {
          assert.equal(direct.values.length, sent.length)
          assert.equal(forwarded.values.length, sent.length)
        },
        { what: 'every push at both clients' },
      )
      assert.deepEqual(forwarded.values, direct.values, 'both clients see the same entries in one order')
      assert.deepEqual([...direct.values.map((sv) => sv.value)].sort(), [...sent].sort())
      // Each client's own pushes keep their order.
      for (const name of ['forwarded', 'direct']) {
        const own = direct.values.map((sv) => sv.value).filter((v) => v.startsWith(name))
        assert.deepEqual(
          own,
          [0, 1, 2, 3, 4].map((i) => `${name}-${i}`),
        )
      }
    }),
)

test(
  'after its owner is killed, a 1.0.12 client on another node is served again by the new owner',
  {
    timeout: 20_000,
  },
  () =>
    withLogs(async () => {
      const room = 'compat-takeover'
      const { owner, others } = await ownerAndOthers(room)
      const survivor = others[0]
      const forwarded = await client(cluster.socketUrlOn(room, survivor), 'k')
      push(forwarded.db, 'k', 'before')
      await eventually(
        () =>
          assert.deepEqual(
            forwarded.values.map((sv) => sv.value),
            ['before'],
          ),
        {
          what: 'the first push',
        },
      )

      const seen = forwarded.messages.length
      let closed = false
      forwarded.db.statusListener.addListener((status) => {
        if (!status.connected) closed = true
      })
      await owner.kill()
      await waitFor(() => closed, { what: 'the forwarded connection to close when its owner dies', timeout: 8_000 })

      // The 1.0.12 client reconnects to the same URL every second and does not subscribe again by itself: ask (as an app
      // would) until the room is served again, by the new owner, with a fresh init.
      let asked = 0
      const init = await waitFor(
        () => {
          const fresh = forwarded.messages.slice(seen).find((m) => m.type === 'init' && m.key === 'k')
          if (!fresh && forwarded.db.status.connected && Date.now() - asked > 250) {
            asked = Date.now()
            forwarded.db.send({ type: 'get', key: 'k', seq: 0 })
          }
          return fresh
        },
        { what: 'an init from the new owner', timeout: 12_000 },
      )
      assert.ok(Array.isArray(init.data), 'a fresh init')
      const newOwner = await cluster.ownerOf(room, survivor)
      assert.notEqual(newOwner, owner, 'another node owns the room')
      assert.ok(others.includes(newOwner))

      // Its writes reach the new owner: a client connected straight to it sees them.
      const direct = await client(cluster.socketUrlOn(room, newOwner), 'k')
      const before = forwarded.values.length
      push(forwarded.db, 'k', 'after')
      await eventually(() => assert.ok(direct.values.some((sv) => sv.value === 'after')), {
        what: 'the write at the owner',
      })
      await eventually(() => assert.equal(forwarded.values.at(-1)?.value, 'after'), { what: 'the write echoed back' })
      assert.ok(forwarded.values.length > before)
      assert.ok(hostOf(forwarded.db.dbUrl) === hostOf(survivor.url), 'the 1.0.12 client kept its URL')
    }),
)
