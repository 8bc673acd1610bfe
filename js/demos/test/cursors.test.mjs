// Live cursors: nothing is sent while alone; two tabs over WebTransport see each other's pointer (name, position,
// the last position of a movement exactly); a tab forced to WebSocket (?transport=websocket) sees and is seen.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { connected, eventually, joinRoom, screenshot, sleep, startDemos } from './helpers.mjs'

let demos

before(async () => {
  demos = await startDemos()
})

after(async () => {
  await demos?.close()
})

/** Moves the mouse to a point of the page's cursor arena given in arena units (0..1), in `steps` moves. */
async function moveTo(page, x, y, steps = 1) {
  await page.bringToFront()
  const box = await page.getByTestId('cursor-arena').boundingBox()
  await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps })
}

/** The remote cursor of `name` as this page shows it: its last received position and where it is drawn. */
async function remoteCursor(page, name) {
  const cursor = page.locator(`[data-testid="remote-cursor"][data-name="${name}"]`)
  await cursor.waitFor({ state: 'attached', timeout: 10_000 })
  const box = await page.getByTestId('cursor-arena').boundingBox()
  const shown = await cursor.boundingBox()
  return {
    tx: Number(await cursor.getAttribute('data-tx')),
    ty: Number(await cursor.getAttribute('data-ty')),
    on: await cursor.getAttribute('data-on'),
    x: shown ? (shown.x - box.x) / box.width : NaN,
    y: shown ? (shown.y - box.y) / box.height : NaN,
  }
}

async function expectCursor(page, name, x, y, what) {
  await eventually(what, async () => {
    const c = await remoteCursor(page, name)
    assert.equal(c.on, 'true')
    assert.ok(Math.abs(c.tx - x) < 0.01 && Math.abs(c.ty - y) < 0.01, `target ${c.tx},${c.ty} is not ${x},${y}`)
    // Interpolation has caught up: drawn where it was sent.
    assert.ok(Math.abs(c.x - x) < 0.02 && Math.abs(c.y - y) < 0.02, `drawn at ${c.x},${c.y}, not ${x},${y}`)
  })
}

/** How many WebTransport datagrams the server has sent (its Prometheus metrics). */
async function datagramsSent() {
  const text = await (await fetch(`${demos.server.url}/metrics`)).text()
  const match = /^driftdb_datagram_bytes_count (\d+)/m.exec(text)
  assert.ok(match, 'driftdb_datagram_bytes_count in /metrics')
  return Number(match[1])
}

/** Gives the page's user a distinct name: default names come from a small list and two tabs can draw the same. */
async function nameAs(page, name) {
  await page.getByTestId('my-name').fill(name)
  return name
}
const peers = (page) => page.getByTestId('cursor-peers').getAttribute('data-count')

test('live cursors over WebTransport and WebSocket', async () => {
  const a = await demos.newPage('/#/cursors', 'cursors A')
  const nameA = await nameAs(a, 'Ada')
  assert.equal(await connected(a), 'webtransport')
  assert.equal(await a.getByTestId('transport').textContent(), 'WebTransport')

  // Alone: moving sends nothing.
  await moveTo(a, 0.5, 0.5)
  await moveTo(a, 0.6, 0.4, 10)
  await sleep(700)
  assert.equal(await a.getByTestId('cursor-sent').textContent(), '0', 'nothing sent while alone')

  const b = await joinRoom(demos, a, 'cursors B')
  const nameB = await nameAs(b, 'Bo')
  assert.equal(await connected(b), 'webtransport')
  assert.equal(await b.getByTestId('transport').textContent(), 'WebTransport')
  for (const page of [a, b]) await eventually('the peer', async () => assert.equal(await peers(page), '1'))

  // When B arrived, A told it where its pointer is.
  await expectCursor(b, nameA, 0.6, 0.4, "A's resting pointer in B")

  // A sweeps across the arena: B ends with A's last position exactly (the trailing send). The moves reach B as
  // datagrams (presence heartbeats add about one a second per page).
  const datagramsBefore = await datagramsSent()
  await moveTo(a, 0.25, 0.5, 5)
  await sleep(700) // the page refreshes its counters twice a second
  const sentBefore = Number(await a.getByTestId('cursor-sent').textContent())
  const start = Date.now()
  await moveTo(a, 0.8, 0.3, 120)
  const elapsed = Date.now() - start
  await expectCursor(b, nameA, 0.8, 0.3, "A's last position in B")
  await sleep(700)
  // At most 60 a second, plus the trailing send and the reliable one at rest.
  const sent = Number(await a.getByTestId('cursor-sent').textContent()) - sentBefore
  assert.ok(sent > 0 && sent <= Math.ceil((elapsed / 1000) * 60) + 3, `${sent} sent in ${elapsed} ms`)
  const datagrams = (await datagramsSent()) - datagramsBefore
  assert.ok(datagrams >= 8, `the sweep went out as datagrams (${datagrams} sent)`)

  await moveTo(b, 0.3, 0.7, 20)
  await expectCursor(a, nameB, 0.3, 0.7, "B's pointer in A")

  // A third tab forced to WebSocket.
  const c = await joinRoom(demos, a, 'cursors C', 'transport=websocket')
  const nameC = await nameAs(c, 'Cy')
  assert.equal(await connected(c), 'websocket')
  assert.equal(await c.getByTestId('transport').textContent(), 'WebSocket')
  for (const page of [a, b, c]) await eventually('the peers', async () => assert.equal(await peers(page), '2'))

  await moveTo(c, 0.55, 0.8, 20)
  await expectCursor(a, nameC, 0.55, 0.8, "C's pointer (WebSocket) in A (WebTransport)")
  await expectCursor(b, nameC, 0.55, 0.8, "C's pointer in B")
  await moveTo(a, 0.15, 0.2, 20)
  await expectCursor(c, nameA, 0.15, 0.2, "A's pointer (WebTransport) in C (WebSocket)")
  await expectCursor(c, nameB, 0.3, 0.7, "B's pointer in C")

  // Leaving the arena hides the cursor for the others.
  await a.bringToFront()
  await a.mouse.move(5, 5)
  await eventually("A's cursor hidden in B", async () => assert.equal((await remoteCursor(b, nameA)).on, 'false'))
  await moveTo(a, 0.45, 0.35, 5)
  await expectCursor(b, nameA, 0.45, 0.35, "A's cursor back in B")

  await moveTo(c, 0.7, 0.6, 3)
  await expectCursor(b, nameC, 0.7, 0.6, "C's pointer in B, before the screenshot")
  await screenshot(b, 'cursors')
  assert.ok(Number(await b.getByTestId('cursor-received').textContent()) > 0)

  // C leaves: its cursor goes away (presence expires after 2 s of silence, the cursor 3 s after its last move).
  await c.close()
  for (const page of [a, b]) {
    await eventually(
      "C's cursor gone",
      async () => assert.equal(await page.locator(`[data-testid="remote-cursor"][data-name="${nameC}"]`).count(), 0),
      12_000,
    )
    assert.equal(await peers(page), '1')
  }
  assert.deepEqual(demos.errors, [])
})
