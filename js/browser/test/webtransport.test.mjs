// A real browser against the real server: headless Chromium (Debian's `chromium`, driven by playwright-core) opens a
// page that uses the browser's own WebTransport API with `serverCertificateHashes`, and exchanges reliable messages
// on the control stream and datagrams with the server and with a WebSocket peer (Node `ws`) in the same room.
//
// Needs `cargo build` (target/debug/driftdb) and /usr/bin/chromium (or $CHROMIUM). Run: npm test -w browser

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import WebSocket from 'ws'

import { launchChromium } from '../../test-support/chromium.mjs'
import { startServer } from '../../test-support/server.mjs'

const STEP_TIMEOUT_MS = 10_000
const GOLDEN = fileURLToPath(new URL('../../../tests/golden/postcard.json', import.meta.url))

let server
let page
let chrome
let site

before(async () => {
  // The harness adds --no-webtransport by default; the later --webtransport wins.
  server = await startServer({ args: ['--webtransport'] })
  const script = await readFile(new URL('../page/client.js', import.meta.url), 'utf8')
  // The page comes from its own origin on 127.0.0.1, a secure context over plain HTTP, as an app's page would.
  site = createServer((request, response) => {
    if (request.url === '/page-client.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
    } else {
      const html = '<!doctype html><meta charset="utf-8"><title>driftdb</title><script src="/page-client.js"></script>'
      response.writeHead(200, { 'content-type': 'text/html' }).end(html)
    }
  })
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve))
  chrome = await launchChromium()
  page = chrome.context.pages()[0] ?? (await chrome.context.newPage())
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  page.on('console', (message) => process.stderr.write(`[page] ${message.text()}\n`))
  await page.goto(`http://127.0.0.1:${site.address().port}/`)
  await page.waitForFunction(() => window.drift !== undefined)
})

after(async () => {
  await chrome?.close()
  await new Promise((resolve) => (site ? site.close(resolve) : resolve()))
  await server?.stop()
})

/** A WebSocket peer collecting every JSON message it receives. */
async function webSocketPeer(url) {
  // `ext=true`: the peer is one of ours, and is shown the `volatile` flag (the reference's shapes lack it).
  const socket = new WebSocket(`${url}?ext=true`)
  const messages = []
  const waiters = new Set()
  socket.on('message', (data) => {
    messages.push(JSON.parse(data.toString()))
    for (const wake of waiters) wake()
  })
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  return {
    send: (message) => socket.send(JSON.stringify(message)),
    /** Removes and returns the first message matching `matches`, waiting a bounded time for it. */
    async take(matches, what) {
      const deadline = Date.now() + STEP_TIMEOUT_MS
      for (;;) {
        const i = messages.findIndex(matches)
        if (i >= 0) return messages.splice(i, 1)[0]
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`WebSocket peer: timed out waiting for ${what}; got ${JSON.stringify(messages)}`)
        await new Promise((resolve) => {
          const wake = () => {
            waiters.delete(wake)
            clearTimeout(timer)
            resolve()
          }
          const timer = setTimeout(wake, left)
          waiters.add(wake)
        })
      }
    },
    close: () => socket.close(),
  }
}

async function newRoom() {
  const response = await fetch(`${server.url}/new`, { method: 'POST' })
  assert.equal(response.status, 200)
  return response.json()
}

test('room info carries what the browser needs for WebTransport', async () => {
  const info = await newRoom()
  assert.equal(info.webtransport_url, `https://127.0.0.1:${server.port}/room/${info.room}/connect`)
  assert.equal(info.certificate_hashes.length, 1)
  assert.equal(info.certificate_hashes[0].algorithm, 'sha-256')
  assert.match(info.certificate_hashes[0].value, /^[0-9a-f]{64}$/)
})

test("the page's hand-written encoder matches the golden vectors", async () => {
  const vectors = JSON.parse(await readFile(GOLDEN, 'utf8'))
  // The page's CBOR subset has no floats; every other client vector must encode identically.
  const integersOnly = (v) =>
    v === null || typeof v !== 'object'
      ? !(typeof v === 'number' && !Number.isInteger(v))
      : Object.values(v).every(integersOnly)
  const client = vectors.filter((v) => v.direction === 'client' && integersOnly(v.message.value ?? null))
  assert.ok(client.length >= 10, 'most client vectors are checked')
  const mismatches = await page.evaluate(
    (vectors) => {
      const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
      const encode = (m) => {
        switch (m.type) {
          case 'push':
            return drift.push(m.key, m.value, m.action.type, m.volatile === true, m.action.seq)
          case 'get':
            return drift.get(m.key, m.seq === undefined ? 0 : m.seq)
          case 'ping':
            return drift.ping(m.nonce ?? null)
          case 'goodbye':
            return drift.goodbye()
          default:
            return new Uint8Array()
        }
      }
      return vectors.filter((v) => hex(encode(v.message)) !== v.postcard_hex).map((v) => v.name)
    },
    client.filter((v) => v.message.type !== 'unsubscribe'),
  )
  assert.deepEqual(mismatches, [])
})

test('the browser exchanges reliable messages and datagrams with the server and a WebSocket peer', async () => {
  const info = await newRoom()
  const peer = await webSocketPeer(info.socket_url)
  peer.send({ type: 'get', key: 'chat', seq: null })
  peer.send({ type: 'get', key: 'cursor', seq: null })
  peer.send({ type: 'ping', nonce: 1 })
  await peer.take((m) => m.type === 'pong', 'pong (peer subscribed)')

  // Session, control stream, a get with its init, subscriptions, a reliable push with its echo.
  const setup = await page.evaluate(async (info) => {
    const client = await drift.connect(info)
    window.client = client
    await client.send(drift.get('chat', 0))
    const init = await client.stream.take((m) => m.type === 'init', 5000, 'init of chat')
    await client.send(drift.get('cursor', null))
    await client.send(drift.push('chat', { text: 'hello from the browser', n: 1 }, 'append'))
    const echo = await client.stream.take((m) => m.type === 'push' && m.key === 'chat', 5000, 'echo of the push')
    return { init, echo, setupMs: client.setupMs, maxDatagramSize: client.maxDatagramSize }
  }, info)
  assert.deepEqual(setup.init.data, [])
  assert.equal(setup.init.key, 'chat')
  assert.deepEqual(setup.echo.value, { text: 'hello from the browser', n: 1 })
  const fromBrowser = await peer.take((m) => m.type === 'push' && m.key === 'chat', 'the browser push')
  assert.deepEqual(fromBrowser.value, { text: 'hello from the browser', n: 1 })
  assert.equal(fromBrowser.seq, setup.echo.seq, 'one seq for both transports')

  // A volatile relay by datagram: the server echoes it by datagram, the WebSocket peer gets a volatile push.
  const datagram = await page.evaluate(async () => {
    const trips = []
    let echo
    for (let i = 0; i < 20; i++) {
      const started = performance.now()
      await client.sendDatagram(drift.push('cursor', { x: i, y: 2 * i }, 'relay', true))
      echo = await client.datagrams.take((m) => m.key === 'cursor' && m.value.x === i, 2000, `datagram echo ${i}`)
      trips.push(performance.now() - started)
    }
    trips.sort((a, b) => a - b)
    return { echo, medianMs: trips[trips.length >> 1] }
  })
  assert.equal(datagram.echo.volatile, true)
  assert.deepEqual(datagram.echo.value, { x: 19, y: 38 })
  const cursor = await peer.take((m) => m.key === 'cursor' && m.value.x === 19, 'the browser datagram via WebSocket')
  assert.equal(cursor.volatile, true)

  // The WebSocket peer's volatile relay reaches the browser as a datagram, its append on the control stream.
  peer.send({ type: 'push', key: 'cursor', value: { x: -1, y: -1 }, action: { type: 'relay' }, volatile: true })
  peer.send({ type: 'push', key: 'chat', value: 'hello from WebSocket', action: { type: 'append' } })
  const received = await page.evaluate(async () => {
    const cursor = await client.datagrams.take((m) => m.key === 'cursor' && m.value.x === -1, 5000, 'peer datagram')
    const chat = await client.stream.take((m) => m.key === 'chat', 5000, 'peer append')
    await client.send(drift.goodbye())
    return { cursor, chat }
  })
  assert.equal(received.cursor.volatile, true)
  assert.equal(received.chat.value, 'hello from WebSocket')
  assert.equal(received.chat.volatile, false)
  peer.close()

  console.error(
    `Chromium WebTransport: session setup ${setup.setupMs.toFixed(1)} ms, ` +
      `datagram round trip median ${datagram.medianMs.toFixed(2)} ms, maxDatagramSize ${setup.maxDatagramSize}`,
  )
})

test('a malformed room id is refused before the session exists', async () => {
  const info = await newRoom()
  const outcome = await page.evaluate(async (info) => {
    const url = info.webtransport_url.replace(`/room/${info.room}/`, '/room/bad.id/')
    const transport = new WebTransport(url, {
      serverCertificateHashes: info.certificate_hashes.map((h) => ({
        algorithm: h.algorithm,
        value: new Uint8Array(h.value.match(/../g).map((x) => parseInt(x, 16))),
      })),
    })
    try {
      await transport.ready
      return 'accepted'
    } catch (error) {
      return `refused: ${error.name}`
    }
  }, info)
  assert.match(outcome, /^refused/)
})
