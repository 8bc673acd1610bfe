// WebRtcConnections in headless Chromium, signaled through a real server: two pages (separate browser contexts)
// open both data channels (no STUN server: host candidates), exchange text and binary messages, survive ICE restarts
// started by both sides at once (perfect negotiation of a renegotiation glare), keep working while one side has lost
// the signaling server for longer than presence lasts, and a peer that leaves is closed.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { WEBRTC_LOCAL_ARGS, launchChromiumBrowser } from '../../../test-support/chromium.mjs'
import { startSite } from '../../../test-support/site.mjs'
import { sleep, until } from '../../../test-support/wait.mjs'
import { Api, startServer } from './helpers.mjs'

const PAGE = fileURLToPath(new URL('./browser/webrtc-page.js', import.meta.url))

let server
let site
let chrome
let room

before(async () => {
  server = await startServer()
  room = await new Api(server.url).newRoom()
  site = await startSite({ script: PAGE, input: { room } })
  chrome = await launchChromiumBrowser({ args: WEBRTC_LOCAL_ARGS })
})

after(async () => {
  await chrome?.close()
  await site?.close()
  await server?.stop()
})

/** A page (its own browser context) with a DbConnection and WebRtcConnections as `name`. */
async function newPeerPage(name) {
  const page = await chrome.newPage()
  page.setDefaultTimeout(10_000)
  page.on('pageerror', (e) => process.stderr.write(`[${name}] ${e.message}\n`))
  await page.goto(`${site.url}?name=${name}`)
  await page.waitForFunction(() => window.ready === true)
  return page
}

/** The peer's info as this page has it, once both channels are open. */
function openPeer(page, peer) {
  return until(
    `${peer} connected with both channels open`,
    async () => {
      const info = await page.evaluate((peer) => window.rtc.peers[peer], peer)
      assert.equal(info?.state, 'connected')
      assert.deepEqual(info.channels, { reliable: 'open', unreliable: 'open' })
      return info
    },
    20_000,
  )
}

/** Sends on a channel until the other page has it (the unreliable channel may drop a message). */
async function deliver(from, to, fromName, channel, data) {
  await until(`${channel} message from ${fromName}`, async () => {
    await from.evaluate(
      ({ channel, data }) => {
        const peer = Object.keys(window.rtc.peers)[0]
        window.rtc.send(peer, channel, typeof data === 'string' ? data : new Uint8Array(data).buffer)
      },
      { channel, data },
    )
    const got = await to.evaluate(() => window.received)
    assert.ok(
      got.some((m) => m.from === fromName && m.channel === channel && JSON.stringify(m.data) === JSON.stringify(data)),
      JSON.stringify(got),
    )
  })
}

/** The ICE username fragment of the page's current remote description for `peer`. */
const remoteUfrag = (page, peer) =>
  page.evaluate((peer) => /a=ice-ufrag:(\S+)/.exec(window.rtc.connection(peer).remoteDescription.sdp)?.[1], peer)

test('two pages connect through DriftDB signaling, exchange messages, restart ICE, outlive a signaling outage and see a peer leave', async () => {
  const [a, b] = [await newPeerPage('alice'), await newPeerPage('bob')]
  await openPeer(a, 'bob')
  await openPeer(b, 'alice')
  await deliver(a, b, 'alice', 'reliable', 'hello bob')
  await deliver(b, a, 'bob', 'reliable', 'hello alice')
  await deliver(a, b, 'alice', 'unreliable', [1, 2, 3, 255])
  assert.equal(await a.evaluate(() => window.rtc.broadcast('reliable', 'to all')), 1)

  // Both sides restart ICE at once: two offers cross, the polite side yields, both end with new credentials.
  const before = [await remoteUfrag(a, 'bob'), await remoteUfrag(b, 'alice')]
  await Promise.all(
    [a, b].map((p) => p.evaluate(() => window.rtc.connection(Object.keys(window.rtc.peers)[0]).restartIce())),
  )
  await until('new ICE credentials on both sides', async () => {
    assert.notEqual(await remoteUfrag(a, 'bob'), before[0])
    assert.notEqual(await remoteUfrag(b, 'alice'), before[1])
  })
  await openPeer(a, 'bob')
  await openPeer(b, 'alice')
  await deliver(a, b, 'alice', 'reliable', 'still here')
  await deliver(b, a, 'bob', 'unreliable', 'me too')

  // Alice loses the DriftDB server for longer than presence lasts: the peer-to-peer connection does not need it and
  // keeps working, during the outage and after.
  await a.evaluate(() => window.db.close())
  await sleep(2_500) // presence expires after 1 s of silence here
  await openPeer(a, 'bob')
  await openPeer(b, 'alice')
  await deliver(a, b, 'alice', 'reliable', 'no server needed')
  await deliver(b, a, 'bob', 'reliable', 'indeed')
  await a.evaluate(() => window.db.connect({ room: window.room, transport: 'websocket' }))
  await deliver(a, b, 'alice', 'unreliable', 'back again')

  // Bob leaves: his presence stops, and Alice closes the connection.
  await b.evaluate(() => window.rtc.destroy())
  await until('bob gone from alice', async () => assert.deepEqual(await a.evaluate(() => window.rtc.peers), {}), 10_000)
  await a.evaluate(() => window.rtc.destroy())
})
