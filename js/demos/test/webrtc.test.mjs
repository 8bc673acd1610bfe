// WebRTC chat, once over WebTransport and once against a server without it: two pages in separate browser contexts
// find each other through DriftDB, open data channels (host candidates on loopback, no STUN server) and exchange
// messages peer to peer; after one page reloads, the two connect again.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { WEBRTC_LOCAL_ARGS } from '../../test-support/chromium.mjs'
import { connected, eventually, joinRoom, screenshot, startDemos } from './helpers.mjs'

async function nameAs(page, name) {
  await page.getByTestId('my-name').fill(name)
}

/** Waits until the page shows one peer, connected, with both data channels open. */
async function peerConnected(page, name) {
  await eventually(
    `a connected peer named ${name}`,
    async () => {
      const peer = page.getByTestId('rtc-peer')
      assert.equal(await peer.count(), 1)
      assert.equal(await peer.getAttribute('data-state'), 'connected')
      assert.equal(await peer.getAttribute('data-reliable'), 'open')
      assert.equal(await peer.getAttribute('data-unreliable'), 'open')
      assert.equal(await peer.getAttribute('data-name'), name)
    },
    20_000,
  )
}

async function say(page, text) {
  await page.getByTestId('chat-input').fill(text)
  await page.getByTestId('chat-send').click()
}

async function heard(page, name, text) {
  await eventually(`"${text}" from ${name}`, async () => {
    const lines = await page
      .locator(`[data-testid="chat-line"][data-name="${name}"]`)
      .evaluateAll((els) => els.map((e) => e.textContent))
    assert.ok(
      lines.some((l) => l.endsWith(text)),
      `lines: ${JSON.stringify(lines)}`,
    )
  })
}

for (const webtransport of [true, false]) {
  const transport = webtransport ? 'webtransport' : 'websocket'
  test(`WebRTC chat signaled over ${transport}`, async () => {
    const demos = await startDemos({ webtransport, separateContexts: true, chromiumArgs: WEBRTC_LOCAL_ARGS })
    try {
      const a = await demos.newPage('/#/webrtc', 'rtc A')
      await nameAs(a, 'Ada')
      assert.equal(await connected(a), transport)
      const b = await joinRoom(demos, a, 'rtc B')
      await nameAs(b, 'Bo')
      assert.equal(await connected(b), transport)

      await peerConnected(a, 'Bo')
      await peerConnected(b, 'Ada')
      await say(a, 'hello from A')
      await heard(b, 'Ada', 'hello from A')
      await say(b, 'hi A, B here')
      await heard(a, 'Bo', 'hi A, B here')
      await screenshot(a, `webrtc-${transport}`)

      // B reloads: a new page session, a new RTCPeerConnection on both sides, messages flow again.
      await b.reload()
      await nameAs(b, 'Bo')
      await connected(b)
      await peerConnected(b, 'Ada')
      await peerConnected(a, 'Bo')
      await say(b, 'back after a reload')
      await heard(a, 'Bo', 'back after a reload')
      await say(a, 'welcome back')
      await heard(b, 'Ada', 'welcome back')
      assert.deepEqual(demos.errors, [])
    } finally {
      await demos.close()
    }
  })
}
