// Shared state and counter demos: two tabs in one room (the second opened from the first's share link).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { connected, eventually, joinRoom, screenshot, startDemos } from './helpers.mjs'

let demos

before(async () => {
  demos = await startDemos()
})

after(async () => {
  await demos?.close()
})

test('home page links every demo and puts a new room in the URL', async () => {
  const page = await demos.newPage('/', 'home')
  await connected(page)
  for (const demo of ['state', 'counter', 'tictactoe', 'cursors', 'game', 'whiteboard', 'webrtc', 'text']) {
    assert.equal(await page.getByTestId(`link-${demo}`).count(), 1, `a link to ${demo}`)
  }
  await eventually('the room id in the URL', () => assert.match(page.url(), /[?&]_driftdb_room=[0-9a-f]+/))
  await page.getByTestId('link-counter').click()
  await page.getByTestId('page-counter').waitFor()
  assert.match(page.url(), /[?&]_driftdb_room=[0-9a-f]+#\/counter$/)
  // The QR code of the share link is rendered locally.
  await page.locator('.qr img[src^="data:image/png"]').waitFor()
  await page.goto(page.url().replace(/#.*$/, '#/'))
  await page.getByTestId('page-home').waitFor()
  await screenshot(page, 'home')
  await page.close()
})

test('shared state: slider, checkbox and text field follow each other in two tabs', async () => {
  const a = await demos.newPage('/#/state', 'state A')
  await connected(a)
  const b = await joinRoom(demos, a, 'state B')
  await connected(b)
  assert.equal(a.url().split('?')[1], b.url().split('?')[1], 'the second tab joined the same room')

  // A moves the slider to its end.
  await a.getByTestId('slider').focus()
  await a.keyboard.press('End')
  await eventually('the slider value in B', async () =>
    assert.equal(await b.getByTestId('slider-value').textContent(), '100'),
  )
  assert.equal(await b.getByTestId('slider').inputValue(), '100')

  // B moves it back a little: A follows.
  await b.getByTestId('slider').focus()
  for (let i = 0; i < 3; i++) await b.keyboard.press('ArrowLeft')
  await eventually('the slider value in A', async () =>
    assert.equal(await a.getByTestId('slider-value').textContent(), '97'),
  )

  await a.getByTestId('checkbox').check()
  await eventually('the checkbox in B', async () => assert.equal(await b.getByTestId('checkbox').isChecked(), true))

  await b.getByTestId('text').fill('hello from tab B')
  await eventually('the text in A', async () =>
    assert.equal(await a.getByTestId('text').inputValue(), 'hello from tab B'),
  )

  // A third tab joining later starts from the current state (stored with replace).
  const c = await joinRoom(demos, a, 'state C')
  await connected(c)
  await eventually('the state in a late tab', async () => {
    assert.equal(await c.getByTestId('slider-value').textContent(), '97')
    assert.equal(await c.getByTestId('checkbox').isChecked(), true)
    assert.equal(await c.getByTestId('text').inputValue(), 'hello from tab B')
  })
  await c.close()

  await screenshot(b, 'shared-state')
  await a.close()
  await b.close()
})

test('counter: both tabs agree, and the stream is compacted above 30 entries', async () => {
  const a = await demos.newPage('/#/counter', 'counter A')
  await connected(a)
  const b = await joinRoom(demos, a, 'counter B')
  await connected(b)

  for (let i = 0; i < 3; i++) await a.getByTestId('inc').click()
  await b.getByTestId('dec').click()
  for (const page of [a, b]) {
    await eventually('the counter at 2', async () =>
      assert.equal(await page.getByTestId('counter-value').textContent(), '2'),
    )
  }

  // 40 more actions: the stream passes 30 entries and the reducer compacts it.
  for (let i = 0; i < 4; i++) await a.getByTestId('burst').click()
  for (const page of [a, b]) {
    await eventually('the counter at 42', async () =>
      assert.equal(await page.getByTestId('counter-value').textContent(), '42'),
    )
    await eventually('a compaction in the debug panel', async () => {
      const row = page.getByTestId('debug-key-counter')
      assert.ok(Number(await row.getAttribute('data-compactions')) >= 1, 'compacted at least once')
      assert.ok(Number(await row.getAttribute('data-size')) <= 31, 'the stored stream is short again')
      assert.ok(Number(await page.getByTestId('compactions').textContent()) >= 1)
    })
  }
  await screenshot(a, 'counter')

  // A tab joining now replays the compacted stream and shows the same value.
  const c = await joinRoom(demos, a, 'counter C')
  await connected(c)
  await eventually('the counter in a late tab', async () =>
    assert.equal(await c.getByTestId('counter-value').textContent(), '42'),
  )
  assert.deepEqual(demos.errors, [])
  for (const page of [a, b, c]) await page.close()
})
