// Shared by the demo tests: the real server serving the built demos (WebTransport on), and headless Chromium.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { chromium } from 'playwright-core'

import { startServer } from '../../test-support/server.mjs'

export const DIST = fileURLToPath(new URL('../dist/', import.meta.url))
export const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/demos/', import.meta.url))
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
export const STEP_TIMEOUT_MS = 10_000

/**
 * Starts the server on the built demos and a browser. Returns `{server, newPage, close}`; pages opened with
 * `newPage` are separate tabs (each its own session storage, hence its own DriftDB client id and player).
 */
export async function startDemos() {
  assert.ok(existsSync(join(DIST, 'index.html')), `no build in ${DIST}: run \`npm run build -w driftdb-demos\``)
  await mkdir(ARTIFACTS, { recursive: true })
  // The harness adds --no-webtransport by default; the later --webtransport wins.
  const server = await startServer({ args: ['--webtransport', '--static-dir', DIST] })
  const profile = await mkdtemp(join(tmpdir(), 'driftdb-demos-chromium-'))
  let context
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: false, // --headless=new is in the arguments
      args: CHROMIUM_ARGS,
      viewport: { width: 1200, height: 900 },
      timeout: 30_000,
    })
  } catch (error) {
    await server.stop()
    await rm(profile, { recursive: true, force: true })
    throw error
  }
  const errors = []
  let unused = context.pages()[0] ?? null

  async function newPage(path, label) {
    const page = unused ?? (await context.newPage())
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
      await context?.close().catch(() => {})
      await server.stop()
      await rm(profile, { recursive: true, force: true })
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
export async function eventually(what, check, timeout = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    try {
      return await check()
    } catch (error) {
      last = error
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${last?.message ?? last}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
