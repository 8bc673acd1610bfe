// Headless Firefox (Debian's `firefox-esr`) against the real server: our driftdb client in the page, once with
// WebTransport forced and once with `auto` (which must pick WebTransport), next to a Node client on WebSocket in the
// same room. All three see the same shared state and log, and volatile relays travel as datagrams both ways.
//
// playwright-core cannot drive Debian's Firefox, so the page (page/firefox.js) runs on its own and reports what it
// sees over HTTP to its site (test-support/site.mjs); the browser is killed by pid at the end, pass or fail.
//
// Needs `cargo build` (target/debug/driftdb), the built driftdb package (the pretest builds it) and
// /usr/bin/firefox-esr (or $FIREFOX). Run: npm test -w browser

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import WebSocket from 'ws'

import { Api, DbConnection, StateListener } from '../../packages/driftdb/dist/index.js'
import { launchFirefox } from '../../test-support/firefox.mjs'
import { startServer } from '../../test-support/server.mjs'
import { startSite } from '../../test-support/site.mjs'
import { eventually } from '../../test-support/wait.mjs'

const PAGE = fileURLToPath(new URL('../page/firefox.js', import.meta.url))
/** Firefox's first start with a fresh profile is slow on a loaded machine; later steps take well under a second. */
const START_TIMEOUT_MS = 60_000
const STEP_TIMEOUT_MS = 15_000
// `auto` races WebSocket after a head start (500 ms by default); a generous one keeps a loaded machine's slow QUIC
// handshake from letting WebSocket win, which would be a flaky test rather than a bug.
const FIREFOX_CLIENTS = [
  { name: 'forced', transport: 'webtransport', setsState: true },
  { name: 'auto', transport: 'auto', headStartMs: 5_000, setsState: false },
]
const NAMES = ['node', ...FIREFOX_CLIENTS.map((c) => c.name)]

let server

before(async () => {
  // The harness adds --no-webtransport by default; the later --webtransport wins.
  server = await startServer({ args: ['--webtransport'] })
})

after(async () => {
  await server?.stop()
})

/** The Node peer: our client on WebSocket, collecting what the Firefox clients collect. */
async function nodePeer(room) {
  const db = new DbConnection()
  const seen = { state: null, log: [], cursors: {} }
  const state = new StateListener({ key: 'state', db, callback: (value) => (seen.state = value) })
  state.subscribe()
  db.subscribe('log', (event) => seen.log.push(event.value))
  db.subscribe('cursor', (event) => (seen.cursors[event.value.from] = event.value.x))
  await db.connect({ room, transport: 'websocket', WebSocket, backoff: { initialMs: 100, maxMs: 1_000 } })
  db.send({ type: 'push', key: 'log', value: 'node-hello', action: { type: 'append' } })
  let x = 0
  const cursors = setInterval(() => {
    db.send({ type: 'push', key: 'cursor', value: { from: 'node', x: x++ }, action: { type: 'relay' }, volatile: true })
  }, 100)
  return {
    db,
    seen,
    setState: (value) => state.setStateOptimistic(value),
    close() {
      clearInterval(cursors)
      db.disconnect()
    },
  }
}

test('Firefox: our client on WebTransport (forced and auto) and a WebSocket peer share a room, datagrams both ways', async () => {
  const room = await new Api(server.url).newRoom()
  assert.ok(room.webtransport_url && room.certificate_hashes?.length, 'the room offers WebTransport')
  const node = await nodePeer(room)
  let site
  let firefox
  /** Waits for `assertion` on the latest reports; on timeout, says what the page and Firefox said. */
  const expect = async (what, assertion, timeout = STEP_TIMEOUT_MS) => {
    try {
      await eventually(assertion, { what, timeout })
    } catch (error) {
      const reports = Object.fromEntries(['page', ...NAMES].map((name) => [name, site.latest(name)]))
      process.stderr.write(`page reports: ${JSON.stringify({ ...reports, node: node.seen, errors: site.errors })}\n`)
      process.stderr.write(`firefox output:\n${firefox?.logs()}\n`)
      throw error
    }
  }
  const firefoxSees = (name) => site.latest(name) ?? assert.fail(`no report from ${name} yet`)
  try {
    site = await startSite({ script: PAGE, input: { room, clients: FIREFOX_CLIENTS } })
    firefox = await launchFirefox(site.url)
    await expect(
      'both Firefox clients connected',
      () => {
        assert.deepEqual(site.errors, [])
        for (const { name } of FIREFOX_CLIENTS) assert.equal(firefoxSees(name).connected, true, name)
      },
      START_TIMEOUT_MS,
    )
    assert.equal(site.latest('page').webTransport, 'function')
    assert.match(site.latest('page').userAgent, /Firefox\//)
    for (const { name } of FIREFOX_CLIENTS) assert.equal(firefoxSees(name).transport, 'webtransport', name)

    // State set in Firefox reaches the WebSocket peer; the peer's answer reaches both Firefox clients.
    await expect('the state from Firefox at the Node peer', () => assert.deepEqual(node.seen.state, { from: 'forced' }))
    node.setState({ from: 'node', after: 'forced' })
    await expect('one state and one log everywhere', () => {
      const hellos = NAMES.map((name) => `${name}-hello`).sort()
      assert.deepEqual([...node.seen.log].sort(), hellos)
      for (const { name } of FIREFOX_CLIENTS) {
        const seen = firefoxSees(name)
        assert.deepEqual(seen.state, { from: 'node', after: 'forced' }, name)
        assert.deepEqual([...seen.log].sort(), hellos, name)
        assert.deepEqual(seen.log, node.seen.log, `${name}: the log in the server's order`)
      }
    })

    // Volatile relays: every client sees every other's cursor; the Firefox clients send and receive datagrams.
    await expect('cursors everywhere, by datagram in Firefox', () => {
      assert.deepEqual(Object.keys(node.seen.cursors).sort(), [...NAMES].sort())
      for (const { name } of FIREFOX_CLIENTS) {
        const seen = firefoxSees(name)
        assert.deepEqual(Object.keys(seen.cursors).sort(), [...NAMES].sort(), name)
        assert.ok(seen.stats.datagramsSent >= 5, `${name} sent ${seen.stats.datagramsSent} datagrams`)
        assert.ok(seen.stats.datagramsReceived >= 5, `${name} received ${seen.stats.datagramsReceived} datagrams`)
      }
    })
    const { connectMs, stats } = firefoxSees('auto')
    console.error(
      `Firefox (auto): WebTransport in ${Math.round(connectMs)} ms; ` +
        `${stats.datagramsSent} datagrams sent, ${stats.datagramsReceived} received`,
    )
    assert.deepEqual(site.errors, [])
  } finally {
    await firefox?.close()
    await site?.close()
    node.close()
  }
})
