// The room inspector (/inspect?room=ID) in headless Chromium: it shows what another client stored (bytes as hex),
// its live relays, the room's connections, and sends a test message.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { encodeCbor } from 'driftdb'
import WebSocket from 'ws'

import { connected, eventually, screenshot, startDemos } from './helpers.mjs'

let demos

before(async () => {
  demos = await startDemos()
})

after(async () => {
  await demos?.close()
})

async function newRoom() {
  const response = await fetch(`${demos.server.url}/new`, { method: 'POST' })
  assert.equal(response.status, 200)
  return response.json()
}

/** Another client of the room: a CBOR WebSocket from Node. */
async function otherClient(room) {
  const socket = new WebSocket(`${room.socket_url}?cbor=true`)
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  return {
    push: (key, value, action) => socket.send(encodeCbor({ type: 'push', key, value, action: { type: action } })),
    close: () => socket.close(),
  }
}

test('the inspector shows a stored key written by another client, its live relays, and sends a test message', async () => {
  const room = await newRoom()
  const other = await otherClient(room)
  other.push('profile', { name: 'Ada', avatar: new Uint8Array([1, 2, 255]) }, 'replace')

  const page = await demos.newPage(`/inspect?room=${room.room}`, 'inspector')
  await page.getByTestId('page-inspect').waitFor()
  assert.match(page.url(), new RegExp(`_driftdb_room=${room.room}#/inspect$`))
  const profile = page.getByTestId('inspect-key-profile')
  await eventually('the stored value, pretty-printed with bytes as hex', async () => {
    const text = await profile.innerText()
    assert.match(text, /"name": "Ada"/)
    assert.match(text, /<bytes 01 02 ff>/)
  })
  await eventually('the other client counted as a WebSocket connection', async () => {
    const websocket = Number(await page.getByTestId('inspect-connections').getAttribute('data-websocket'))
    assert.ok(websocket >= 2, `websocket connections: ${websocket} (the other client and the page's debug socket)`)
  })

  // Relays are not stored: only the live flow shows them.
  const relay = page.locator('[data-testid="inspect-flow"] tr[data-type="push"][data-key="cursor"]')
  let x = 0
  await eventually('a relay from the other client in the live flow', async () => {
    other.push('cursor', { x: x++ }, 'relay')
    assert.ok((await relay.count()) > 0)
  })
  assert.match(await relay.first().innerText(), /"x":\d+/)

  await page.getByTestId('inspect-send-key').fill('from-inspector')
  await page.getByTestId('inspect-send-action').selectOption('append')
  await page.getByTestId('inspect-send-value').fill('{"n": 7}')
  await page.getByTestId('inspect-send').click()
  await eventually('the reply of the test message', async () =>
    assert.match(await page.getByTestId('inspect-send-reply').innerText(), /^200 /),
  )
  const stored = await fetch(room.http_url, {
    method: 'POST',
    body: JSON.stringify({ type: 'get', key: 'from-inspector' }),
  }).then((r) => r.json())
  assert.deepEqual(
    stored.data.map((e) => e.value),
    [{ n: 7 }],
  )
  await page.getByTestId('inspect-key-from-inspector').waitFor()
  await screenshot(page, 'inspector')
  other.close()
  await page.close()
})

test("the demos' debug panel links to this server's inspector for the room", async () => {
  const page = await demos.newPage('/#/counter', 'counter')
  await connected(page)
  const link = page.getByTestId('debug-inspector-link')
  await eventually('the inspector link', async () => {
    const href = await link.getAttribute('href')
    assert.match(href ?? '', new RegExp(`^${demos.server.url}/inspect\\?room=[0-9a-f]+$`))
  })
  const room = new URL(page.url()).searchParams.get('_driftdb_room')
  assert.equal(await link.getAttribute('href'), `${demos.server.url}/inspect?room=${room}`)
  await page.close()
})
