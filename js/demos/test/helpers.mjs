// Shared by the demo tests: the real server serving the built demos (WebTransport on), and headless Chromium.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { launchChromium, launchChromiumBrowser } from '../../test-support/chromium.mjs'
import { startServer } from '../../test-support/server.mjs'
import { until } from '../../test-support/wait.mjs'

export const DIST = fileURLToPath(new URL('../dist/', import.meta.url))
export const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/demos/', import.meta.url))
export const STEP_TIMEOUT_MS = 10_000

/**
 * Starts the server on the built demos and a browser. Returns `{server, newPage, close}`; pages opened with
 * `newPage` are separate tabs (each its own session storage, hence its own DriftDB client id and player).
 *
 * Options: `webtransport: false` starts the server with `--no-webtransport`; `separateContexts: true` opens each
 * page in its own browser context (its own storage and network); `chromiumArgs` adds browser flags.
 */
export async function startDemos({ webtransport = true, separateContexts = false, chromiumArgs = [] } = {}) {
  assert.ok(existsSync(join(DIST, 'index.html')), `no build in ${DIST}: run \`npm run build -w driftdb-demos\``)
  await mkdir(ARTIFACTS, { recursive: true })
  // The harness adds --no-webtransport by default; the later --webtransport wins.
  const server = await startServer({ args: [...(webtransport ? ['--webtransport'] : []), '--static-dir', DIST] })
  let chrome
  try {
    chrome = separateContexts
      ? await launchChromiumBrowser({
          args: chromiumArgs,
          contextOptions: { viewport: { width: 1200, height: 900 } },
        })
      : await launchChromium({ viewport: { width: 1200, height: 900 } })
  } catch (error) {
    await server.stop()
    throw error
  }
  const errors = []
  let unused = separateContexts ? null : (chrome.context.pages()[0] ?? null)
  const openPage = separateContexts ? () => chrome.newPage() : () => chrome.context.newPage()

  async function newPage(path, label) {
    const page = unused ?? (await openPage())
    unused = null
    page.setDefaultTimeout(STEP_TIMEOUT_MS)
    page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS)
    page.on('pageerror', (e) => {
      errors.push(`[${label}] ${e.message}`)
      process.stderr.write(`[${label}] page error: ${e.message}\n`)
    })
    page.on('console', (m) => {
      if (m.type() === 'error' || process.env.DRIFTDB_TEST_VERBOSE) process.stderr.write(`[${label}] ${m.text()}\n`)
    })
    const url = path.startsWith('http') ? path : `${server.url}${path}`
    await page.goto(url)
    return page
  }

  return {
    server,
    newPage,
    /** Errors thrown in any page (uncaught), for a final check. */
    errors,
    async close() {
      await chrome.close().catch(() => {})
      await server.stop()
    },
  }
}

/** Waits for the page to be connected; returns the transport shown ('webtransport' or 'websocket'). */
export async function connected(page) {
  const status = page.getByTestId('status')
  await status.and(page.locator('[data-connected="true"]')).waitFor({ timeout: STEP_TIMEOUT_MS })
  return status.getAttribute('data-transport')
}

/** The room's share link as shown on the page (waits until the room is known). */
export async function shareLink(page) {
  const input = page.getByTestId('share-url')
  await page.waitForFunction(
    () => document.querySelector('[data-testid="share-url"]')?.value.includes('_driftdb_room='),
    null,
    { timeout: STEP_TIMEOUT_MS },
  )
  return input.inputValue()
}

/** Opens a second page on the first page's share link (optionally with extra query parameters). */
export async function joinRoom(demos, firstPage, label, extraQuery = '') {
  const link = await shareLink(firstPage)
  const url = new URL(link)
  for (const [k, v] of new URLSearchParams(extraQuery)) url.searchParams.set(k, v)
  const page = await demos.newPage(url.toString(), label)
  return page
}

/** Polls `check` (which throws until satisfied) for a bounded time. */
export function eventually(what, check, timeout = STEP_TIMEOUT_MS) {
  return until(what, check, timeout, 100)
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
}

export { sleep } from '../../test-support/wait.mjs'

/** How many WebTransport datagrams the server has sent (its Prometheus metrics). */
export async function datagramsSent(server) {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const match = /^driftdb_datagram_bytes_count (\d+)/m.exec(text)
  assert.ok(match, 'driftdb_datagram_bytes_count in /metrics')
  return Number(match[1])
}
