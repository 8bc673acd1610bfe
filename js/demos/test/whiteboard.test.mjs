// Whiteboard, once over WebTransport and once against a server without it: a stroke drawn in one page appears in the
// other, live while it is drawn (volatile relays) and stored once finished; a page that joins later and a reload see
// every finished stroke; the stored stream stays under the compaction bound.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { connected, datagramsSent, eventually, joinRoom, screenshot, startDemos } from './helpers.mjs'

const COMPACT_ABOVE = 30

/** Draws a stroke from (x0, y0) to (x1, y1), in canvas units (0..1). `hold` runs with the pointer still down. */
const boxes = new WeakMap()

async function draw(page, [x0, y0], [x1, y1], { hold = async () => {}, steps = 4 } = {}) {
  // The canvas does not move while a page draws (the layout is fixed): measure it once per page load.
  if (!boxes.has(page)) {
    boxes.set(page, await page.getByTestId('wb-canvas').boundingBox())
    page.once('load', () => boxes.delete(page))
  }
  const box = boxes.get(page)
  const at = (x, y) => [box.x + x * box.width, box.y + y * box.height]
  await page.mouse.move(...at(x0, y0))
  await page.mouse.down()
  await page.mouse.move(...at((x0 + x1) / 2, (y0 + y1) / 2), { steps })
  await page.mouse.move(...at(x1, y1), { steps })
  await hold()
  await page.mouse.up()
}

const strokeIds = (page) => page.getByTestId('stroke').evaluateAll((els) => els.map((e) => e.dataset.id).sort())
const count = async (page) => Number(await page.getByTestId('wb-count').textContent())

for (const webtransport of [true, false]) {
  const transport = webtransport ? 'webtransport' : 'websocket'
  test(`whiteboard over ${transport}`, async () => {
    const demos = await startDemos({ webtransport, separateContexts: true })
    try {
      const a = await demos.newPage('/#/whiteboard', 'board A')
      assert.equal(await connected(a), transport)
      const b = await joinRoom(demos, a, 'board B')
      assert.equal(await connected(b), transport)

      // In progress: B sees A's line while A's pointer is still down, and not yet stored.
      const datagramsBefore = await datagramsSent(demos.server)
      // The stroke is long (81 points) and each relay carries only its last 32: B stitches them into the whole line.
      await draw(a, [0.1, 0.1], [0.4, 0.3], {
        steps: 40,
        hold: async () => {
          const mine = await a.locator('path.wb-mine').getAttribute('d')
          await eventually('the whole live stroke in B', async () =>
            assert.equal(await b.getByTestId('live-stroke').getAttribute('d'), mine),
          )
          assert.equal(await count(b), 0, 'not stored before the stroke ends')
        },
      })
      await eventually('the finished stroke in B', async () => assert.equal(await count(b), 1))
      const datagrams = (await datagramsSent(demos.server)) - datagramsBefore
      if (webtransport) assert.ok(datagrams >= 1, 'the live stroke went out as datagrams')
      else assert.equal(datagrams, 0, 'no WebTransport, no datagrams')
      assert.equal(await b.getByTestId('live-stroke').count(), 0, 'the live copy gave way to the stored stroke')

      // Both draw, with several colours; enough strokes to be compacted more than once.
      for (let i = 0; i < 36; i++) {
        const page = i % 2 === 0 ? a : b
        if (i % 9 === 0) await page.getByTestId(`wb-color-${(i / 9) % 5}`).click()
        const y = 0.15 + (i % 18) * 0.045
        await draw(page, [0.05 + (i % 2) * 0.5, y], [0.4 + (i % 2) * 0.5, y + 0.03], { steps: 1 })
      }
      const total = 37
      for (const page of [a, b]) await eventually('every stroke', async () => assert.equal(await count(page), total))
      assert.deepEqual(await strokeIds(b), await strokeIds(a))

      // A late joiner sees every finished stroke; so does a reload.
      const c = await joinRoom(demos, a, 'board C')
      assert.equal(await connected(c), transport)
      await eventually('every stroke in the late joiner', async () => assert.equal(await count(c), total))
      assert.deepEqual(await strokeIds(c), await strokeIds(a))
      await b.reload()
      await connected(b)
      await eventually('every stroke after a reload', async () => assert.equal(await count(b), total))

      // The stored stream stays under the compaction bound (the debug socket's view of it).
      await eventually('the compacted stream', async () => {
        const size = Number(await a.getByTestId('stream-size').textContent())
        assert.ok(size > 0 && size <= COMPACT_ABOVE + 2, `stream of ${size} entries`)
        assert.ok(Number(await a.getByTestId('compactions').textContent()) >= 1, 'compacted at least once')
      })
      await screenshot(c, `whiteboard-${transport}`)

      await c.getByTestId('wb-clear').click()
      for (const page of [a, b, c]) await eventually('a cleared board', async () => assert.equal(await count(page), 0))
      assert.deepEqual(demos.errors, [])
    } finally {
      await demos.close()
    }
  })
}
