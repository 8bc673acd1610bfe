// This package in headless Chromium (Debian's `chromium` under playwright-core) against the real server with
// WebTransport on: pages through WebTransport and a page forced to WebSocket share state, a reducer, presence and
// volatile values; `auto` falls back to WebSocket within 2 s when QUIC is unreachable; after the server is killed and
// restarted every page reconnects (WebTransport again, with the new certificate hash) and converges, offline writes
// included.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { launchChromium } from '../../../test-support/chromium.mjs'
import { startSite } from '../../../test-support/site.mjs'
import { until } from '../../../test-support/wait.mjs'
import { Api, sleep, startServer } from './helpers.mjs'

const PAGE = fileURLToPath(new URL('./browser/page.js', import.meta.url))
const BIN = process.env.DRIFTDB_BIN || fileURLToPath(new URL('../../../../target/debug/driftdb', import.meta.url))

let chrome
let site
const pages = []

before(async () => {
  // The page, with the package's dist/ and cbor-x through an import map.
  site = await startSite({ script: PAGE })
  chrome = await launchChromium()
})

after(async () => {
  await chrome?.close()
  await site?.close()
})

async function newPage(label) {
  const page = await chrome.context.newPage()
  page.setDefaultTimeout(10_000)
  page.on('console', (m) => {
    if (m.type() === 'error' && process.env.DRIFTDB_TEST_VERBOSE) process.stderr.write(`[${label}] ${m.text()}\n`)
  })
  page.on('pageerror', (e) => process.stderr.write(`[${label}] page error: ${e.message}\n`))
  await page.goto(site.url)
  await page.waitForFunction(() => typeof window.startApp === 'function')
  pages.push(page)
  return page
}

async function closePages() {
  for (const p of pages.splice(0)) await p.close().catch(() => {})
}

const snap = (page) => page.evaluate(() => window.appSnapshot())

/** Spawns `driftdb serve` on a fixed port (WebTransport on), for the restart test. */
async function serveOnPort(port) {
  const child = spawn(BIN, ['serve', '--port', String(port), '--webtransport', '--storage', 'memory'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stderr.resume()
  await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error('server did not start')), 30_000)
    child.stdout.on('data', (d) => {
      out += d
      if (/listening on http/.test(out)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => reject(new Error(`server exited (${code})`)))
  })
  process.once('exit', () => child.kill('SIGKILL'))
  return {
    url: `http://127.0.0.1:${port}`,
    kill: () =>
      new Promise((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r()
        child.once('exit', r)
        child.kill('SIGKILL')
      }),
  }
}

test('WebTransport pages and a WebSocket page share state, reducer, presence and volatile values', async () => {
  const server = await startServer({ args: ['--webtransport'] })
  try {
    const room = await new Api(server.url).newRoom()
    assert.ok(room.webtransport_url, 'the room offers WebTransport')
    assert.ok(room.certificate_hashes?.length, 'with a certificate hash')
    const [a, b, c] = [await newPage('A'), await newPage('B'), await newPage('C')]
    const statuses = [
      await a.evaluate((r) => window.startApp(r, { name: 'A', transport: 'auto' }), room),
      await b.evaluate((r) => window.startApp(r, { name: 'B', transport: 'auto' }), room),
      await c.evaluate((r) => window.startApp(r, { name: 'C', transport: 'websocket' }), room),
    ]
    assert.deepEqual(
      statuses.map((s) => s.transport),
      ['webtransport', 'webtransport', 'websocket'],
    )
    await a.evaluate(() => window.app.stateListener.setStateOptimistic({ from: 'A', n: 1 }))
    await until('state everywhere', async () => {
      for (const p of [b, c]) assert.deepEqual((await snap(p)).state, { from: 'A', n: 1 })
    })
    await c.evaluate(() => window.app.stateListener.setStateOptimistic({ from: 'C', n: 2 }))
    await until('state from the WebSocket page', async () => {
      for (const p of [a, b]) assert.deepEqual((await snap(p)).state, { from: 'C', n: 2 })
    })
    for (const [p, name] of [
      [a, 'A'],
      [b, 'B'],
      [c, 'C'],
    ]) {
      await p.evaluate((n) => {
        for (let i = 0; i < 3; i++) window.app.reducer.dispatch(`${n}${i}`)
      }, name)
    }
    await until('reducers converge', async () => {
      const [sa, sb, sc] = [await snap(a), await snap(b), await snap(c)]
      assert.equal(sa.reduced.length, 9)
      assert.deepEqual(sb.reduced, sa.reduced)
      assert.deepEqual(sc.reduced, sa.reduced)
      assert.equal(sa.pending + sb.pending + sc.pending, 0)
    })
    await until('presence', async () => {
      assert.deepEqual((await snap(a)).presence, ['B', 'C'])
      assert.deepEqual((await snap(b)).presence, ['A', 'C'])
      assert.deepEqual((await snap(c)).presence, ['A', 'B'])
    })
    // Volatile relays: datagrams from A; a big one falls back to the control stream; and from the WebSocket page.
    await a.evaluate(async () => {
      for (let x = 0; x < 20; x++) {
        window.app.db.send({ type: 'push', key: 'cursor', value: { x }, action: { type: 'relay' }, volatile: true })
        await new Promise((r) => setTimeout(r, 5))
      }
      window.app.db.send({
        type: 'push',
        key: 'cursor',
        value: 'y'.repeat(3000),
        action: { type: 'relay' },
        volatile: true,
      })
    })
    await until('volatile values from the WebTransport page', async () => {
      for (const p of [b, c]) {
        const s = await snap(p)
        assert.deepEqual(s.cursor, { x: 19 })
        assert.equal(s.bigLength, 3000)
      }
    })
    // They travelled as datagrams both ways on WebTransport (the big one on the control stream).
    const sentByA = (await snap(a)).stats.datagramsSent
    assert.ok(sentByA >= 20, `A sent ${sentByA} datagrams (20 cursors plus presence heartbeats)`)
    assert.ok((await snap(b)).stats.datagramsReceived > 0, 'the server sent volatile relays to B as datagrams')
    assert.equal((await snap(c)).stats.datagramsReceived, 0)
    await c.evaluate(() =>
      window.app.db.send({ type: 'push', key: 'cursor', value: { x: 100 }, action: { type: 'relay' }, volatile: true }),
    )
    await until('volatile value from the WebSocket page', async () => {
      for (const p of [a, b]) assert.deepEqual((await snap(p)).cursor, { x: 100 })
    })
    // Unsubscribe over WebTransport: the server stops sending the key.
    await a.evaluate(() => window.watchKey('u'))
    await sleep(100)
    await c.evaluate(() => window.app.db.send({ type: 'push', key: 'u', value: 1, action: { type: 'append' } }))
    await until('u at A', async () => assert.deepEqual(await a.evaluate(() => window.keyValues('u')), [1]))
    await a.evaluate(() => window.unwatchKey('u'))
    const wireBefore = await a.evaluate(() => window.wireFor('u'))
    await sleep(100)
    await c.evaluate(() => {
      window.app.db.send({ type: 'push', key: 'u', value: 2, action: { type: 'append' } })
      window.app.db.send({ type: 'push', key: 'u', value: 3, action: { type: 'relay' }, volatile: true })
    })
    // A round trip on A's control stream after C's pushes reached the server.
    await sleep(200)
    assert.ok((await a.evaluate(() => window.app.db.testLatency())) >= 0)
    assert.equal(await a.evaluate(() => window.wireFor('u')), wireBefore, 'nothing for u after unsubscribe')
    // B leaves: the others see it go.
    await b.close()
    await until('B gone', async () => {
      assert.deepEqual((await snap(a)).presence, ['C'])
      assert.deepEqual((await snap(c)).presence, ['A'])
    })
  } finally {
    await closePages()
    await server.stop()
  }
})

test('auto falls back to WebSocket within 2 s when QUIC is unreachable', async () => {
  const withWt = await startServer({ args: ['--webtransport'] })
  const noWt = await startServer() // the harness turns WebTransport off
  try {
    const hashes = (await new Api(withWt.url).newRoom()).certificate_hashes
    const room = await new Api(noWt.url).newRoom()
    assert.equal(room.webtransport_url, undefined)
    // Advertise WebTransport on a UDP port where nothing answers, as when a network blocks UDP.
    const advertised = {
      ...room,
      webtransport_url: `https://127.0.0.1:${noWt.port}/room/${room.room}/connect`,
      certificate_hashes: hashes,
    }
    const page = await newPage('fallback')
    const status = await page.evaluate((r) => window.startApp(r, { name: 'F', transport: 'auto' }), advertised)
    assert.equal(status.transport, 'websocket')
    const { connectMs } = await snap(page)
    assert.ok(connectMs < 2_000, `connected in ${Math.round(connectMs)} ms`)
    // And without any WebTransport URL, straight to WebSocket.
    const page2 = await newPage('plain')
    const status2 = await page2.evaluate((r) => window.startApp(r, { name: 'G', transport: 'auto' }), room)
    assert.equal(status2.transport, 'websocket')
    assert.ok((await snap(page2)).connectMs < 1_000)
  } finally {
    await closePages()
    await withWt.stop()
    await noWt.stop()
  }
})

test('after the server is killed and restarted, every page reconnects and converges; offline writes are kept', async () => {
  // Find a free port with the harness, then run our own server process on it so that it can come back there.
  const probe = await startServer({ args: ['--webtransport'] })
  const port = probe.port
  await probe.stop()
  let server = await serveOnPort(port)
  try {
    const room = await new Api(server.url).newRoom()
    const [a, b, c] = [await newPage('A'), await newPage('B'), await newPage('C')]
    await a.evaluate((r) => window.startApp(r, { name: 'A', transport: 'auto' }), room)
    await b.evaluate((r) => window.startApp(r, { name: 'B', transport: 'auto' }), room)
    await c.evaluate((r) => window.startApp(r, { name: 'C', transport: 'websocket' }), room)
    const append = (p, value) =>
      p.evaluate((v) => window.app.db.send({ type: 'push', key: 'log', value: v, action: { type: 'append' } }), value)
    await a.evaluate(() => window.app.stateListener.setStateOptimistic({ shared: 'before the crash' }))
    await append(a, 'a-before')
    await append(c, 'c-before')
    await until('logs before', async () => {
      for (const p of [a, b, c]) assert.deepEqual([...(await snap(p)).log].sort(), ['a-before', 'c-before'])
    })
    await server.kill()
    await until('pages see the outage', async () => {
      for (const p of [a, b, c]) assert.equal((await snap(p)).status.connected, false)
    })
    // Written while the server is down: queued, then delivered after the reconnection.
    await append(a, 'a-offline')
    await append(c, 'c-offline')
    await a.evaluate(() => window.app.reducer.dispatch('A-offline'))
    await c.evaluate(() => window.app.reducer.dispatch('C-offline'))
    await sleep(300)
    server = await serveOnPort(port)
    await until(
      'every page reconnected',
      async () => {
        const s = [await snap(a), await snap(b), await snap(c)]
        assert.deepEqual(
          s.map((x) => x.status.transport),
          ['webtransport', 'webtransport', 'websocket'],
        )
      },
      15_000,
    )
    await until('convergence on the new server', async () => {
      const s = [await snap(a), await snap(b), await snap(c)]
      for (const x of s) {
        assert.ok(x.resets >= 1, 'the new epoch was noticed')
        assert.deepEqual(x.log.slice(2).sort(), ['a-offline', 'c-offline'])
        assert.deepEqual(x.reduced, s[0].reduced)
        assert.deepEqual(x.state, { shared: 'before the crash' })
        assert.equal(x.pending, 0)
      }
      assert.deepEqual([...s[0].reduced].sort(), ['A-offline', 'C-offline'])
    })
    // A page arriving now sees the same room.
    const d = await newPage('D')
    const fresh = await new Api(server.url).getRoom(room.room)
    assert.notDeepEqual(fresh.certificate_hashes, room.certificate_hashes, 'the restarted server has a new certificate')
    const statusD = await d.evaluate((r) => window.startApp(r, { name: 'D', transport: 'auto' }), fresh)
    assert.equal(statusD.transport, 'webtransport')
    await until('late page', async () => {
      const s = await snap(d)
      assert.deepEqual(s.state, { shared: 'before the crash' }, 'shared state restored by the pages')
      assert.deepEqual([...s.log].sort(), ['a-offline', 'c-offline'])
      assert.deepEqual(s.reduced, (await snap(a)).reduced)
    })
  } finally {
    await closePages()
    await server.kill()
  }
})
