// The counter demo keeps its count across a server restart on the same data directory (Chromium, WebSocket): a tab
// that stays open reconnects and goes on counting, and a tab opened afterwards shows the stored count.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'

import { launchChromium } from '../../test-support/chromium.mjs'
import { freePort, startServer } from '../../test-support/server.mjs'
import { DIST, STEP_TIMEOUT_MS, connected, eventually, shareLink } from './helpers.mjs'

const dir = mkdtempSync(join(tmpdir(), 'driftdb-demos-'))
const cleanups = [() => rmSync(dir, { recursive: true, force: true })]
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

const counterAt = (page, value) =>
  eventually(`the counter at ${value}`, async () =>
    assert.equal(await page.getByTestId('counter-value').textContent(), String(value)),
  )

test('counter: the count survives a server restart', async () => {
  const port = await freePort()
  const args = ['--static-dir', DIST, '--storage', 'embedded', '--data-dir', dir]
  let server = await startServer({ port, args })
  cleanups.push(() => server.stop())
  const chrome = await launchChromium({ viewport: { width: 1200, height: 900 } })
  cleanups.push(() => chrome.close().catch(() => {}))
  const page = await chrome.context.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  await page.goto(`${server.url}/#/counter`)
  await connected(page)
  for (let i = 0; i < 3; i++) await page.getByTestId('inc').click()
  await counterAt(page, 3)
  const link = await shareLink(page)

  await server.stop()
  server = await startServer({ port, args })

  // The open tab reconnects by itself, resumes, and counts on.
  await connected(page)
  await page.getByTestId('inc').click()
  await counterAt(page, 4)
  // A tab opened after the restart shows the stored count.
  const late = await chrome.context.newPage()
  late.setDefaultTimeout(STEP_TIMEOUT_MS)
  await late.goto(link)
  await connected(late)
  await counterAt(late, 4)
})
