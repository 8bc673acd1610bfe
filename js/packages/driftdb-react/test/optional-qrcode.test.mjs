// `qrcode` is an optional peer dependency, loaded by `RoomQRCode` on first render. An app that never renders it bundles
// without it (ESM and CommonJS builds of this package), and an app that renders it without `qrcode` installed gets a
// link to the room URL and one warning. Here `qrcode` cannot be resolved because esbuild's own resolver is sent to a
// package that does not exist (`alias`); test/pack.test.mjs does the same in a fresh install that has no `qrcode` at
// all. With `qrcode` available, react.test.mjs and browser.test.mjs check the QR image.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import { build } from 'esbuild'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const PACKAGE = fileURLToPath(new URL('..', import.meta.url))
const MISSING = 'qrcode-is-not-installed'

let dir
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'driftdb-qrcode-'))
})
after(() => {
  if (dir && !process.env.KEEP) rmSync(dir, { recursive: true, force: true })
})

/** Bundles `contents` (resolved from this folder, so `driftdb-react` is this package) with `qrcode` unresolvable. */
async function bundle(contents, options = {}) {
  const result = await build({
    stdin: { contents, resolveDir: HERE, loader: 'jsx', sourcefile: 'app.jsx' },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'esm',
    jsx: 'automatic',
    external: ['ws'],
    alias: { qrcode: MISSING },
    metafile: true,
    absWorkingDir: PACKAGE,
    logLevel: 'silent',
    ...options,
  })
  const inputs = Object.keys(result.metafile.inputs)
  const ours = options.format === 'cjs' ? 'dist/cjs/index.js' : 'dist/index.js'
  assert.ok(inputs.includes(ours), `this package's ${ours} is in the bundle: ${inputs.join(', ')}`)
  assert.deepEqual(
    inputs.filter((i) => /qrcode/i.test(i)),
    [],
    'no qrcode module in the bundle',
  )
  const code = result.outputFiles[0].text
  // A string of qrcode's own code (one of its errors), and the path comments esbuild puts before each module.
  assert.ok(!code.includes('The amount of data is too big to be stored in a QR Code'), 'no qrcode code')
  assert.doesNotMatch(code, /node_modules\/qrcode\//)
  return code
}

test('an app using only useSharedState bundles (ESM build) without qrcode installed, and carries no qrcode code', async () => {
  const code = await bundle(`
    import { DriftDBProvider, useSharedState } from 'driftdb-react'
    export function Counter() {
      const [count, setCount] = useSharedState('count', 0)
      return <button onClick={() => setCount((c) => c + 1)}>{count}</button>
    }
    export const App = () => <DriftDBProvider api="http://127.0.0.1:1/"><Counter /></DriftDBProvider>
  `)
  assert.match(code, /useSharedState/)
})

test('a CommonJS app (require, the CommonJS build) bundles without qrcode installed, and carries no qrcode code', async () => {
  const code = await bundle(
    `
    const { useSharedState, RoomQRCode } = require('driftdb-react')
    module.exports = { useSharedState, RoomQRCode }
  `,
    { format: 'cjs' },
  )
  assert.match(code, /RoomQRCode/)
})

test('RoomQRCode without qrcode installed renders a link to the room URL and warns once', async () => {
  const code = await bundle(`
    import { DbConnection } from 'driftdb'
    import { DatabaseContext, RoomQRCode } from 'driftdb-react'
    import TestRenderer, { act } from 'react-test-renderer'

    globalThis.IS_REACT_ACT_ENVIRONMENT = true
    const warnings = []
    console.warn = (...args) => warnings.push(args.map(String).join(' '))
    const urls = ['https://app.example/?_driftdb_room=one', 'https://app.example/?_driftdb_room=two']
    const db = new DbConnection()
    let renderer
    act(() => {
      renderer = TestRenderer.create(
        <DatabaseContext.Provider value={db}>
          {urls.map((url) => <RoomQRCode key={url} url={url} />)}
        </DatabaseContext.Provider>,
      )
    })
    let links = []
    for (let i = 0; i < 100 && links.length < urls.length; i++) {
      await act(() => new Promise((resolve) => setTimeout(resolve, 20)))
      links = renderer.root.findAllByType('a').map((a) => ({ href: a.props.href, text: a.children.join('') }))
    }
    const images = renderer.root.findAllByType('img').length
    act(() => renderer.unmount())
    db.disconnect()
    // One line of result; the test stops this process once it has read it.
    process.stdout.write(JSON.stringify({ links, images, warnings }) + '\\n')
  `)
  // Bundled with a require shim for React's CommonJS modules, and run from a folder with no node_modules.
  const banner =
    "import { createRequire as bannerRequire } from 'node:module'; const require = bannerRequire(import.meta.url);\n"
  const file = join(dir, 'fallback.mjs')
  writeFileSync(file, banner + code)
  const out = JSON.parse(await firstLine(process.execPath, [file], dir))
  assert.deepEqual(out.links, [
    { href: 'https://app.example/?_driftdb_room=one', text: 'https://app.example/?_driftdb_room=one' },
    { href: 'https://app.example/?_driftdb_room=two', text: 'https://app.example/?_driftdb_room=two' },
  ])
  assert.equal(out.images, 0)
  assert.equal(out.warnings.length, 1, `one warning: ${JSON.stringify(out.warnings)}`)
  assert.match(out.warnings[0], /install qrcode to render RoomQRCode as a QR image/)
})

/** Runs `command` in `cwd` until it prints a line, then stops it and returns that line. Fails if it exits or
 * stays silent for 30 s first. */
function firstLine(command, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'] })
    const timer = setTimeout(() => finish(new Error(`no output from ${args.join(' ')} within 30 s`)), 30_000)
    let output = ''
    const finish = (error, line) => {
      clearTimeout(timer)
      child.kill()
      if (error) reject(error)
      else resolve(line)
    }
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk) => {
      output += chunk
      const end = output.indexOf('\n')
      if (end >= 0) finish(null, output.slice(0, end))
    })
    child.on('exit', (code) => finish(new Error(`exited with ${code} before printing a result: ${output}`)))
  })
}
