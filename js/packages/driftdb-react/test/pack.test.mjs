// The packages as a user gets them: `npm pack` each one, install the tarballs into a fresh app in a temporary
// directory (from the local npm cache where it can: `--prefer-offline`), bundle the app with esbuild and run it against a server.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  copyFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'

import { startServer } from '../../../test-support/server.mjs'

const PACKAGES = fileURLToPath(new URL('../../', import.meta.url))
const ESBUILD = fileURLToPath(new URL('../node_modules/.bin/esbuild', import.meta.url))
const VITE = join(dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin', 'vite.js')
const APP_SOURCE = fileURLToPath(new URL('./pack-app/app.jsx', import.meta.url))
// A string of qrcode's own code (one of its errors), there when a bundle carries it, minified or not.
const QRCODE_CODE = 'The amount of data is too big to be stored in a QR Code'

let server
let dir
before(async () => {
  server = await startServer()
  dir = mkdtempSync(join(tmpdir(), 'driftdb-pack-'))
})
after(async () => {
  await server?.stop()
  if (dir && !process.env.KEEP) rmSync(dir, { recursive: true, force: true })
})

function run(command, args, cwd) {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })
}

/** `npm pack` of one package (its prepack builds it); returns the tarball's path and its file list. */
function pack(name) {
  const output = run('npm', ['pack', '--json', '--pack-destination', dir], join(PACKAGES, name))
  const [info] = JSON.parse(output.slice(output.indexOf('[')))
  return { tarball: join(dir, info.filename), files: info.files.map((f) => f.path) }
}

/**
 * Builds a browser app of the fresh app's packages with Vite (in a process of its own: a build sets NODE_ENV to
 * production); returns the JavaScript it emitted, all of it.
 */
function viteApp(app) {
  const root = join(app, 'web')
  mkdirSync(root, { recursive: true })
  writeFileSync(
    join(root, 'index.html'),
    '<!doctype html><div id="root"></div><script type="module" src="./main.jsx"></script>',
  )
  writeFileSync(
    join(root, 'main.jsx'),
    `import { DriftDBProvider, RoomQRCode, useSharedState } from 'driftdb-react'
window.app = { DriftDBProvider, RoomQRCode, useSharedState }`,
  )
  const outDir = join(app, 'web-dist')
  run(process.execPath, [VITE, 'build', root, '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'], app)
  return readdirSync(join(outDir, 'assets'))
    .filter((f) => f.endsWith('.js'))
    .map((f) => readFileSync(join(outDir, 'assets', f), 'utf8'))
    .join('\n')
}

test('the packed packages (driftdb, driftdb-react, y-driftdb) install into a fresh app, bundle with esbuild and Vite, and run against a server', () => {
  const core = pack('driftdb')
  const react = pack('driftdb-react')
  const yjs = pack('y-driftdb')
  for (const { files } of [core, react, yjs]) {
    for (const required of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts']) {
      assert.ok(files.includes(required), `the tarball has ${required}: ${files.join(', ')}`)
    }
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'no sources or tests shipped')
  }

  const app = join(dir, 'app')
  run('mkdir', ['-p', app], dir)
  const manifest = {
    name: 'fresh-app',
    private: true,
    type: 'module',
    dependencies: {
      driftdb: `file:${core.tarball}`,
      'driftdb-react': `file:${react.tarball}`,
      'y-driftdb': `file:${yjs.tarball}`,
      yjs: '^13.6.27',
      react: '^18.3.1',
      'react-test-renderer': '^18.3.1',
      ws: '^8.18.0',
    },
    // cbor-extract (an optional speed-up of cbor-x) would compile with node-gyp; the pure-JS path is enough here.
    allowScripts: { 'cbor-extract': false },
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify(manifest, null, 2))
  copyFileSync(APP_SOURCE, join(app, 'app.jsx'))
  const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app)
  assert.doesNotMatch(install, /npm error/)
  assert.ok(readdirSync(join(app, 'node_modules', 'driftdb', 'dist')).includes('index.js'))
  // qrcode (RoomQRCode's) is an optional peer dependency: not a dependency of the package, so not installed.
  const reactManifest = JSON.parse(readFileSync(join(app, 'node_modules', 'driftdb-react', 'package.json'), 'utf8'))
  assert.equal(reactManifest.dependencies.qrcode, undefined, 'qrcode is not a dependency')
  assert.ok(reactManifest.peerDependencies.qrcode, 'qrcode is a peer dependency')
  assert.deepEqual(reactManifest.peerDependenciesMeta, { qrcode: { optional: true } })
  for (const manifest of [
    reactManifest,
    ...['driftdb', 'y-driftdb'].map((name) =>
      JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8')),
    ),
  ]) {
    for (const field of ['repository', 'homepage', 'bugs'])
      assert.equal(manifest[field], undefined, `${manifest.name} has no ${field}`)
    assert.ok(manifest.keywords.includes('driftdb'), `${manifest.name} keywords`)
  }
  assert.ok(!existsSync(join(app, 'node_modules', 'qrcode')), 'qrcode is not installed')

  // An ES module bundle gets a `require` for the CommonJS packages inside it (React's), as Node apps bundle.
  const banner =
    "--banner:js=import { createRequire as bannerRequire } from 'node:module'; const require = bannerRequire(import.meta.url);"
  const bundle = [
    'app.jsx',
    '--bundle',
    '--platform=node',
    '--format=esm',
    '--external:ws',
    banner,
    '--outfile=app.mjs',
    '--metafile=meta.json',
  ]
  const bundleAndRun = () => {
    run(ESBUILD, bundle, app)
    const inputs = Object.keys(JSON.parse(readFileSync(join(app, 'meta.json'), 'utf8')).inputs)
    const result = JSON.parse(run(process.execPath, ['app.mjs', server.url], app).trim().split('\n').at(-1))
    assert.equal(result.greeting, 'hello from the tarballs')
    assert.equal(result.status, `connected ${server.url}/inspect?room=${result.room}`)
    assert.equal(result.text, 'shared text')
    return { inputs, result }
  }

  // Without qrcode the app bundles (none of it inside) and RoomQRCode falls back to a link, with one warning.
  const without = bundleAndRun()
  assert.deepEqual(
    without.inputs.filter((i) => i.includes('qrcode')),
    [],
    'no qrcode in the bundle',
  )
  assert.deepEqual(without.result.qr, { link: `https://app.example/?_driftdb_room=${without.result.room}` })
  assert.equal(without.result.warnings.length, 1, JSON.stringify(without.result.warnings))
  assert.match(without.result.warnings[0], /install qrcode to render RoomQRCode as a QR image/)
  // Vite builds a browser app that imports RoomQRCode without qrcode too (an optional peer dependency it stubs).
  assert.ok(!viteApp(app).includes(QRCODE_CODE), 'no qrcode in the Vite build')

  // The app installs qrcode: the same code now draws the QR image.
  const add = run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', 'qrcode@^1.5.4'],
    app,
  )
  assert.doesNotMatch(add, /npm error/)
  const withQr = bundleAndRun()
  assert.ok(
    withQr.inputs.some((i) => i.startsWith('node_modules/qrcode/')),
    'qrcode is bundled once installed',
  )
  assert.match(withQr.result.qr?.img ?? '', /^data:image\/png;base64,/)
  assert.deepEqual(withQr.result.warnings, [])
  assert.ok(viteApp(app).includes(QRCODE_CODE), 'qrcode in the Vite build once installed')
})
