// An app written for driftdb-react 1.0.12 (test/browser/app.jsx), bundled unchanged with this package and run in
// headless Chromium against the real server with WebTransport on: the pages share a room through the URL, use
// WebTransport, and share state, reducers (one through 1.0.12's `driftdb/dist/compactor`) and presence.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { launchChromium } from '../../../test-support/chromium.mjs'
import { startServer } from '../../../test-support/server.mjs'
import { until } from '../../../test-support/wait.mjs'

let server
let site
let chrome

before(async () => {
  server = await startServer({ args: ['--webtransport'] })
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('./browser/app.jsx', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  })
  const script = bundle.outputFiles[0].text
  const html = `<!doctype html><meta charset="utf-8"><title>1.0.12 app</title><div id="root"></div>
<script>window.DRIFTDB_API = ${JSON.stringify(server.url)}</script><script type="module" src="/app.js"></script>`
  site = createServer((request, response) => {
    if (request.url === '/app.js') return response.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
    if (request.url.startsWith('/?') || request.url === '/') {
      return response.writeHead(200, { 'content-type': 'text/html' }).end(html)
    }
    response.writeHead(404).end()
  })
  await new Promise((r) => site.listen(0, '127.0.0.1', r))
  chrome = await launchChromium()
})

after(async () => {
  await chrome?.close()
  await new Promise((r) => (site ? site.close(r) : r()))
  await server?.stop()
})

const text = (page, id) => page.locator(`#${id}`).textContent()

test('a driftdb-react 1.0.12 app runs unchanged in Chromium, over WebTransport', async () => {
  const first = await chrome.context.newPage()
  await first.goto(`http://127.0.0.1:${site.address().port}/`)
  // The provider made a room and put it in the page URL, as 1.0.12 does.
  await until('room in the URL', async () => assert.match(first.url(), /_driftdb_room=\w+/))
  const second = await chrome.context.newPage()
  await second.goto(first.url())
  const pages = [first, second]
  await until('connected over WebTransport', async () => {
    for (const p of pages) {
      assert.equal(await text(p, 'status'), 'connected')
      assert.match(await p.locator('body').textContent(), /Connected.*webtransport/)
    }
  })
  await first.locator('#input').fill('hello')
  await until('text shared', async () => assert.equal(await text(second, 'text'), 'hello'))
  await second.locator('#bang').click()
  await until('function setter', async () => assert.equal(await text(first, 'text'), 'hello!'))
  for (let i = 0; i < 3; i++) {
    await first.locator('#inc').click()
    await second.locator('#inc').click()
  }
  await first.locator('#add').click()
  await second.locator('#add').click()
  await first.locator('#tally-up').click()
  await second.locator('#tally-up').click()
  await until('reducers converge', async () => {
    for (const p of pages) assert.equal(await text(p, 'count'), '6')
    for (const p of pages) assert.equal(await text(p, 'tally'), '10', 'Compactor from driftdb/dist/compactor')
    assert.equal(await text(first, 'items'), await text(second, 'items'))
    assert.equal((await text(first, 'items')).split(',').length, 2)
  })
  await until('presence', async () => {
    for (const p of pages) assert.equal(await text(p, 'peers'), '1')
  })
  // The QR code is drawn locally (a data: URL), not fetched from a third party.
  const src = await first.locator('img').getAttribute('src')
  assert.match(src, /^data:image\/png;base64,/)
  await second.close()
  await until('peer left', async () => assert.equal(await text(first, 'peers'), '0'), 5_000)
  await first.close()
})
