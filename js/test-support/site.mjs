// A page's own web site for the browser tests: serves the page module with the driftdb package (its compiled dist/)
// and cbor-x through an import map. For a browser the test cannot script (Firefox), it also hands the page its input
// as /input.json and collects what the page reports back with POST /report.
//
//   const site = await startSite({ script: '/abs/path/page.js', input: { room } })
//   // the page: `const input = await (await fetch('/input.json')).json()`, then
//   //           `fetch('/report', { method: 'POST', body: JSON.stringify({ name: 'status', ... }) })`
//   site.url              // 'http://127.0.0.1:PORT/', a secure context over plain HTTP
//   site.latest('status') // the last report of that name, or undefined
//   site.errors           // every report named 'error' (the page's uncaught errors, say)
//   await site.close()
//
// The package is served as built: run `npm run build -w packages/driftdb` first (its pretest does).

import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { basename, dirname, extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const DIST = fileURLToPath(new URL('../packages/driftdb/dist/', import.meta.url))
const CBOR_X = fileURLToPath(new URL('../node_modules/cbor-x/', import.meta.url))
const MAX_REPORT_BYTES = 1024 * 1024

const HTML = `<!doctype html><meta charset="utf-8"><title>driftdb</title>
<script type="importmap">{"imports": {"driftdb": "/driftdb/index.js", "cbor-x": "/cbor-x/index.js"}}</script>
<script type="module" src="/page.js"></script>`

/** Serves `rel` from under `root`, never outside it. */
async function serveFile(response, root, rel) {
  const path = normalize(join(root, rel))
  if (!path.startsWith(root.endsWith(sep) ? root : root + sep) || !existsSync(path)) {
    return response.writeHead(404).end()
  }
  const type = extname(path) === '.js' ? 'text/javascript' : 'application/octet-stream'
  response.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(await readFile(path))
}

/** Reads a JSON request body of at most MAX_REPORT_BYTES. */
async function readJson(request) {
  let body = ''
  for await (const chunk of request.setEncoding('utf8')) {
    body += chunk
    if (body.length > MAX_REPORT_BYTES) throw new Error('report too large')
  }
  return JSON.parse(body)
}

/**
 * @param {{script: string, input?: unknown}} options `script`: absolute path of the page module; `input`: served
 *   as /input.json.
 * @returns {Promise<{url: string, latest: (name: string) => any, errors: Array<{name: 'error', message: string}>,
 *   close: () => Promise<void>}>} `latest`: the last report of each name; `errors`: every report named 'error'.
 */
export async function startSite({ script, input = null }) {
  if (!existsSync(join(DIST, 'index.js'))) {
    throw new Error(`${DIST}index.js is missing: run \`npm run build -w packages/driftdb\``)
  }
  const latest = new Map()
  const errors = []
  const server = createServer((request, response) => {
    const { pathname } = new URL(request.url, 'http://site')
    const fail = (error) => response.writeHead(500).end(String(error?.message ?? error))
    if (request.method === 'POST' && pathname === '/report') {
      readJson(request).then((report) => {
        latest.set(report.name, report)
        if (report.name === 'error') errors.push(report)
        response.writeHead(204).end()
      }, fail)
    } else if (pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html' }).end(HTML)
    } else if (pathname === '/input.json') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(input))
    } else if (pathname === '/page.js') {
      serveFile(response, dirname(script), basename(script)).catch(fail)
    } else if (pathname.startsWith('/driftdb/')) {
      serveFile(response, DIST, pathname.slice('/driftdb/'.length)).catch(fail)
    } else if (pathname.startsWith('/cbor-x/')) {
      serveFile(response, CBOR_X, pathname.slice('/cbor-x/'.length)).catch(fail)
    } else {
      response.writeHead(404).end()
    }
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    latest: (name) => latest.get(name),
    errors,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(resolve)
      }),
  }
}
