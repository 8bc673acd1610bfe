// Coin chase: two tabs steer their dots (pointer) to the coin; each tab sees the other's dot (volatile moves), and
// both scoreboards (the shared reducer) agree.
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

/** Every player's score as the page shows it, by name. */
const scores = (page) =>
  page.evaluate(() =>
    Object.fromEntries(
      Array.from(document.querySelectorAll('[data-testid="score-row"]'), (row) => [
        row.dataset.name,
        Number(row.dataset.score),
      ]),
    ),
  )

const total = (s) => Object.values(s).reduce((a, b) => a + b, 0)

/** Points the page's pointer at its coin and waits until its total score grows. */
async function chaseCoin(page, label) {
  await page.bringToFront()
  const before = total(await scores(page))
  const coin = page.getByTestId('coin')
  const x = Number(await coin.getAttribute('data-x'))
  const y = Number(await coin.getAttribute('data-y'))
  const box = await page.getByTestId('game-arena').boundingBox()
  await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 4 })
  // The dot moves at 0.55 arena units per second: any coin is reached within 3 s.
  await eventually(`${label} to collect the coin`, async () => assert.ok(total(await scores(page)) > before), 8_000)
}

test('coin chase: two players, volatile moves, scores agree', async () => {
  const a = await demos.newPage('/#/game', 'game A')
  await connected(a)
  const b = await joinRoom(demos, a, 'game B')
  await connected(b)
  const nameA = await a.getByTestId('my-name').inputValue()
  const nameB = await b.getByTestId('my-name').inputValue()
  for (const page of [a, b]) {
    await eventually('both players on the scoreboard', async () =>
      assert.deepEqual(Object.keys(await scores(page)).sort(), [nameA, nameB].sort()),
    )
  }

  // B changes colour (until it differs from A's): the scoreboards follow.
  const myColor = (page) =>
    page.locator('.you-row .swatch-button').evaluate((el) => getComputedStyle(el).backgroundColor)
  const colorA = await myColor(a)
  for (let i = 0; i < 3 && (i === 0 || (await myColor(b)) === colorA); i++) {
    await b.locator('.you-row .swatch-button').click()
  }
  const colorB = await myColor(b)
  assert.notEqual(colorB, colorA)
  await eventually("B's new colour on A's scoreboard", async () => {
    const swatch = a.locator(`[data-testid="score-row"][data-name="${nameB}"] .swatch`)
    assert.equal(await swatch.evaluate((el) => getComputedStyle(el).backgroundColor), colorB)
  })

  await chaseCoin(a, 'A')
  await chaseCoin(b, 'B')
  await chaseCoin(a, 'A')
  await chaseCoin(b, 'B')
  await chaseCoin(a, 'A')

  // Both show the same scores: at least the 5 coins chased (a dot left standing may take a coin that appears
  // under it), each player with some.
  let final
  await eventually('the same scores on both pages', async () => {
    const [sa, sb] = [await scores(a), await scores(b)]
    assert.deepEqual(sa, sb)
    assert.ok(total(sa) >= 5, `5 coins or more: ${JSON.stringify(sa)}`)
    final = sa
  })
  // The events agree too.
  assert.deepEqual(await a.locator('.events').textContent(), await b.locator('.events').textContent())
  assert.ok(final[nameA] >= 1 && final[nameB] >= 1, `both players scored: ${JSON.stringify(final)}`)

  // Each page shows the other's dot where the other page has it.
  for (const [page, other, otherName] of [
    [a, b, nameB],
    [b, a, nameA],
  ]) {
    await eventually(`${otherName}'s dot`, async () => {
      const mine = await other.getByTestId('my-dot').boundingBox()
      const remote = await page.locator(`[data-testid="remote-dot"][data-name="${otherName}"]`).boundingBox()
      const [boxOther, boxPage] = [
        await other.getByTestId('game-arena').boundingBox(),
        await page.getByTestId('game-arena').boundingBox(),
      ]
      assert.ok(remote, 'the remote dot is drawn')
      const dx = (remote.x - boxPage.x) / boxPage.width - (mine.x - boxOther.x) / boxOther.width
      const dy = (remote.y - boxPage.y) / boxPage.height - (mine.y - boxOther.y) / boxOther.height
      assert.ok(Math.hypot(dx, dy) < 0.02, `off by ${dx},${dy}`)
    })
  }
  await screenshot(a, 'game')
  assert.deepEqual(demos.errors, [])
})
