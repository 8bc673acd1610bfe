// The packages as a user gets them: `npm pack` each one, install the tarballs into a fresh app in a temporary
// directory (from the local npm cache where it can: `--prefer-offline`), bundle the app with esbuild and run it against a server.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'

import { startServer } from '../../../test-support/server.mjs'

const PACKAGES = fileURLToPath(new URL('../../', import.meta.url))
const ESBUILD = fileURLToPath(new URL('../node_modules/.bin/esbuild', import.meta.url))
const APP_SOURCE = fileURLToPath(new URL('./pack-app/app.jsx', import.meta.url))

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

test('the packed packages (driftdb, driftdb-react, y-driftdb) install into a fresh app, bundle with esbuild and run against a server', () => {
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
  ]
  run(ESBUILD, bundle, app)
  const result = JSON.parse(run(process.execPath, ['app.mjs', server.url], app).trim().split('\n').at(-1))
  assert.equal(result.greeting, 'hello from the tarballs')
  assert.equal(result.status, `connected ${server.url}/inspect?room=${result.room}`)
  assert.equal(result.text, 'shared text')
})
