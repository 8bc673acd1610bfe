// Headless Chromium for the JS browser tests: Debian's `chromium` (or $CHROMIUM) driven by playwright-core.
//
//   const chrome = await launchChromium({ viewport: { width: 1200, height: 900 } })
//   const page = chrome.context.pages()[0] ?? (await chrome.context.newPage())
//   await chrome.close() // closes the browser and removes its profile
//
// Every launch gets a fresh temporary profile (--user-data-dir), removed by close().

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { chromium } from 'playwright-core'

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/**
 * Launches Chromium with a fresh temporary profile. Extra `options` (e.g. `viewport`) go to playwright's
 * launchPersistentContext.
 *
 * @param {import('playwright-core').BrowserContextOptions} [options]
 * @returns {Promise<{context: import('playwright-core').BrowserContext, profile: string, close: () => Promise<void>}>}
 */
export async function launchChromium(options = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'driftdb-chromium-'))
  const removeProfile = () => rm(profile, { recursive: true, force: true })
  let context
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: false, // --headless=new is in the arguments
      args: CHROMIUM_ARGS,
      timeout: 30_000,
      ...options,
    })
  } catch (error) {
    await removeProfile()
    throw error
  }
  return {
    context,
    profile,
    async close() {
      try {
        await context.close()
      } finally {
        await removeProfile()
      }
    },
  }
}

/**
 * Flags for WebRTC between pages of one machine without any STUN server: host candidates as plain addresses (by
 * default Chromium hides them behind mDNS names, which nothing resolves on a test machine). The machine needs an
 * interface besides loopback: Chromium gathers no loopback candidates (even with --allow-loopback-in-peer-connection,
 * tried in a loopback-only network namespace).
 */
export const WEBRTC_LOCAL_ARGS = ['--disable-features=WebRtcHideLocalIpsWithMdns']

/**
 * Launches Chromium without a persistent profile, for tests that need pages in separate browser contexts (each its
 * own storage and network state). `newPage()` opens a page in a new context; `close()` closes them all.
 *
 * @param {{args?: string[], contextOptions?: import('playwright-core').BrowserContextOptions}} [options]
 */
export async function launchChromiumBrowser({ args = [], contextOptions = {} } = {}) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: false, // --headless=new is in the arguments
    args: [...CHROMIUM_ARGS, ...args],
    timeout: 30_000,
  })
  return {
    browser,
    async newPage() {
      const context = await browser.newContext(contextOptions)
      return context.newPage()
    },
    close: () => browser.close(),
  }
}
