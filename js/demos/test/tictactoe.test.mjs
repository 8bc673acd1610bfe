// Tic-tac-toe: the first mover is X, the next distinct player O; out-of-turn and occupied moves are ignored by
// both tabs; a win is detected on both; a new game clears the board.
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

const board = (page) =>
  page.evaluate(() =>
    Array.from({ length: 9 }, (_, i) => document.querySelector(`[data-testid="cell-${i}"]`)?.dataset.mark || '.').join(
      '',
    ),
  )

async function bothShow(pages, expected, what) {
  for (const page of pages) {
    await eventually(what, async () => assert.equal(await board(page), expected))
  }
}

test('tic-tac-toe: turns, ignored moves and a win, the same in both tabs', async () => {
  const a = await demos.newPage('/#/tictactoe', 'ttt A')
  await connected(a)
  const b = await joinRoom(demos, a, 'ttt B')
  await connected(b)
  const pages = [a, b]

  await a.getByTestId('cell-0').click()
  await bothShow(pages, 'X........', 'the first move as X')
  await eventually('A seated as X', async () => assert.match(await b.getByTestId('seat-X').textContent(), /X.+/))

  // A again, out of turn: ignored (by the shared reducer, on every tab), with a hint for A.
  await a.getByTestId('cell-1').click()
  await eventually('the hint', async () =>
    assert.equal(await a.getByTestId('ttt-hint').textContent(), 'Not your turn.'),
  )
  // B on the occupied cell: ignored too.
  await b.getByTestId('cell-0').click()
  await eventually('the hint', async () =>
    assert.equal(await b.getByTestId('ttt-hint').textContent(), 'That cell is taken.'),
  )
  await sleep(300) // give an (incorrectly) accepted move time to show up
  await bothShow(pages, 'X........', 'the ignored moves to change nothing')

  // B is the next distinct player: O.
  await b.getByTestId('cell-3').click()
  await bothShow(pages, 'X..O.....', 'O from the second player')
  assert.match(await a.getByTestId('seat-O').textContent(), /\(you\)|[A-Z][a-z]+ [A-Z][a-z]+/)
  assert.match(await b.getByTestId('seat-O').textContent(), /\(you\)/)

  await a.getByTestId('cell-1').click()
  await bothShow(pages, 'XX.O.....', 'X again')
  await b.getByTestId('cell-4').click()
  await bothShow(pages, 'XX.OO....', 'O again')
  await a.getByTestId('cell-2').click()
  await bothShow(pages, 'XXXOO....', 'the winning move')
  for (const page of pages) {
    await eventually('the win', async () => {
      assert.equal(await page.getByTestId('ttt-status').getAttribute('data-outcome'), 'X')
      assert.equal(await page.getByTestId('ttt-status').textContent(), 'X wins!')
    })
  }
  // After the end nothing more is accepted.
  await b.getByTestId('cell-5').click()
  await sleep(300)
  await bothShow(pages, 'XXXOO....', 'no move after the end')
  await screenshot(a, 'tictactoe')

  await b.getByTestId('ttt-reset').click()
  await bothShow(pages, '.........', 'an empty board after reset')
  for (const page of pages) {
    await eventually('no outcome', async () =>
      assert.equal(await page.getByTestId('ttt-status').getAttribute('data-outcome'), ''),
    )
  }
  assert.deepEqual(demos.errors, [])
})

test('tic-tac-toe: a draw is detected', async () => {
  const a = await demos.newPage('/#/tictactoe', 'draw A')
  await connected(a)
  const b = await joinRoom(demos, a, 'draw B')
  await connected(b)
  // X O X / X O O / O X X: no line.
  const moves = [0, 1, 2, 4, 3, 5, 7, 6, 8]
  let expected = '.........'.split('')
  for (const [i, cell] of moves.entries()) {
    const page = i % 2 === 0 ? a : b
    await page.getByTestId(`cell-${cell}`).click()
    expected[cell] = i % 2 === 0 ? 'X' : 'O'
    await bothShow([a, b], expected.join(''), `move ${i + 1}`)
  }
  for (const page of [a, b]) {
    await eventually('the draw', async () =>
      assert.equal(await page.getByTestId('ttt-status').getAttribute('data-outcome'), 'draw'),
    )
  }
})
