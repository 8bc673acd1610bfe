// Room tokens in headless Chromium with WebTransport on (see auth-fixture.mjs for the server and the tokens): a
// read-only page watches the writer page's counter, and its own clicks are refused with the error shown.
/* global window, document */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { launchChromium } from '../../../test-support/chromium.mjs'
import { startSite } from '../../../test-support/site.mjs'
import { ADMIN_TOKEN, useAuthServer } from './auth-fixture.mjs'
import { Api } from './helpers.mjs'

const COUNTER_PAGE = fileURLToPath(new URL('./browser/counter.js', import.meta.url))
const env = useAuthServer()

test('Chromium: a read-only page watches the writer page count; its own clicks are refused, the error shown', async () => {
  const site = await startSite({ script: COUNTER_PAGE })
  const chrome = await launchChromium()
  try {
    const { room } = await new Api(env.server.url).newRoom(ADMIN_TOKEN)
    const page = async (can) => {
      const p = await chrome.context.newPage()
      p.setDefaultTimeout(10_000)
      await p.goto(site.url)
      await p.waitForFunction(() => typeof window.start === 'function')
      const token = await env.issue(room, can)
      const transport = await p.evaluate(
        ([api, id, token]) => window.start(api, id, token),
        [env.server.url, room, token],
      )
      assert.equal(transport, 'webtransport', 'the token travels on the WebTransport CONNECT URL too')
      return p
    }
    const writer = await page(['read', 'write'])
    const reader = await page(['read'])
    for (let i = 0; i < 3; i++) await writer.click('#inc')
    await reader.waitForFunction(() => document.getElementById('count').textContent === '3')
    await reader.click('#inc')
    await reader.waitForFunction(() => document.getElementById('error').textContent !== '')
    assert.equal(await reader.textContent('#error'), 'the token lacks the `write` capability')
    await writer.click('#inc')
    await reader.waitForFunction(() => document.getElementById('count').textContent === '4')
    assert.equal(await writer.textContent('#error'), '')
  } finally {
    await chrome.close()
    await site.close()
  }
})
