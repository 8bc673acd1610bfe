// Collaborative text (CodeMirror 6 + y-codemirror.next on y-driftdb), once over WebTransport and once against a
// server without it, pages in separate browser contexts: concurrent typing converges, an edit made while a page is
// offline merges on reconnect, remote cursors (Yjs awareness over volatile relays) appear with the peer's name, and a
// page that joins later gets the whole text.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { connected, datagramsSent, eventually, joinRoom, screenshot, startDemos } from './helpers.mjs'

async function nameAs(page, name) {
  await page.getByTestId('my-name').fill(name)
}

/** The editor's text: its lines, without the remote cursors' widgets. */
const text = (page) =>
  page.locator('.cm-content').evaluate((el) => {
    const copy = el.cloneNode(true)
    for (const widget of copy.querySelectorAll('.cm-ySelectionCaret, .cm-widgetBuffer')) widget.remove()
    return [...copy.querySelectorAll('.cm-line')].map((line) => line.textContent).join('\n')
  })

async function synced(page) {
  await page.locator('[data-testid="text-synced"][data-synced="true"]').waitFor()
}

/** Types at the end (or the start) of the page's editor: key by key, or as one input event when `paste`. */
async function typeAtEnd(page, what, key = 'Control+End', paste = false) {
  await page.locator('.cm-content').click()
  await page.keyboard.press(key)
  if (paste) await page.keyboard.insertText(what)
  else await page.keyboard.type(what)
}

for (const webtransport of [true, false]) {
  const transport = webtransport ? 'webtransport' : 'websocket'
  test(`collaborative text over ${transport}`, async () => {
    const demos = await startDemos({ webtransport, separateContexts: true })
    try {
      const a = await demos.newPage('/#/text', 'text A')
      await nameAs(a, 'Ada')
      assert.equal(await connected(a), transport)
      await synced(a)
      const b = await joinRoom(demos, a, 'text B')
      await nameAs(b, 'Bo')
      assert.equal(await connected(b), transport)
      await synced(b)

      // Concurrent typing: both pages type at once, A at the start and B at the end of a shared line; both end
      // with the same text holding both.
      await typeAtEnd(a, '|middle|')
      await eventually('the first line in B', async () => assert.equal(await text(b), '|middle|'))
      await Promise.all([typeAtEnd(a, 'alpha from A. ', 'Control+Home'), typeAtEnd(b, ' bravo from B.')])
      await eventually('the same text in both pages', async () => {
        const [ta, tb] = [await text(a), await text(b)]
        assert.equal(ta, tb)
        assert.equal(ta, 'alpha from A. |middle| bravo from B.')
      })

      // Remote cursors: each page shows the other's caret with its name (awareness: datagrams over WebTransport).
      await eventually("Bo's cursor in A", async () =>
        assert.equal(await a.locator('.cm-ySelectionInfo', { hasText: 'Bo' }).count(), 1),
      )
      await eventually("Ada's cursor in B", async () =>
        assert.equal(await b.locator('.cm-ySelectionInfo', { hasText: 'Ada' }).count(), 1),
      )
      if (webtransport) assert.ok((await datagramsSent(demos.server)) > 0, 'awareness went out as datagrams')
      await eventually('the peer lists', async () => {
        assert.equal(await a.getByTestId('text-peers').getAttribute('data-count'), '1')
        assert.equal(await b.getByTestId('text-peers').getAttribute('data-count'), '1')
      })

      // B goes offline and edits; A edits meanwhile; once B is back, both have both edits.
      await b.getByTestId('text-offline').check()
      await b.getByTestId('status').and(b.locator('[data-connected="false"]')).waitFor()
      await typeAtEnd(b, ' offline edit by B.', 'Control+End', true)
      await typeAtEnd(a, 'online edit by A. ', 'Control+Home', true)
      await eventually("A's edit in A", async () => assert.ok((await text(a)).includes('online edit by A. ')))
      assert.ok(!(await text(a)).includes('offline edit by B'), 'B was offline: A cannot have its edit yet')
      assert.ok(!(await text(b)).includes('online edit by A'), 'B was offline: it cannot have A’s edit yet')
      await b.getByTestId('text-offline').uncheck()
      assert.equal(await connected(b), transport)
      await eventually('both edits in both pages', async () => {
        const [ta, tb] = [await text(a), await text(b)]
        assert.equal(ta, tb)
        assert.equal(ta, 'online edit by A. alpha from A. |middle| bravo from B. offline edit by B.')
      })

      // A late joiner gets the whole text.
      const c = await joinRoom(demos, a, 'text C')
      await nameAs(c, 'Cy')
      await synced(c)
      const expected = await text(a)
      await eventually('the whole text in C', async () => assert.equal(await text(c), expected))
      await typeAtEnd(c, ' C was here.', 'Control+End', true)
      await eventually("C's edit in A", async () => assert.ok((await text(a)).endsWith('C was here.')))
      await eventually("Cy's cursor in A", async () =>
        assert.equal(await a.locator('.cm-ySelectionInfo', { hasText: 'Cy' }).count(), 1),
      )
      await screenshot(a, `collab-text-${transport}`)
      assert.deepEqual(demos.errors, [])
    } finally {
      await demos.close()
    }
  })
}
