// Every module path of the published driftdb 1.0.12 and driftdb-react 1.0.12 packages resolves on ours, to a module
// with (at least) the same runtime exports, for `import` and for `require` (1.0.12 was CommonJS, so both worked).
// The list of paths is read from the published packages themselves (installed as driftdb-reference and
// driftdb-react-reference), not written down here. The types of those paths are checked by `tsc` on the fixture
// apps in packages/*/test/types (dist-paths.ts, dist-paths.cts, dist-paths.tsx).

import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
// The browser globals the 1.0.12 modules expect at load time.
import './helpers.mjs'

const require = createRequire(import.meta.url)

/** The `dist/*.js` module names of an installed published package, e.g. `['api', 'compactor', ...]`. */
function publishedModules(packageName) {
  const dist = join(dirname(require.resolve(`${packageName}/package.json`)), 'dist')
  return readdirSync(dist)
    .filter((file) => file.endsWith('.js'))
    .map((file) => file.slice(0, -'.js'.length))
    .sort()
}

/** The runtime export names of a CommonJS module, as a consumer sees them (`__esModule` is a marker, not an export). */
const exportNames = (module) =>
  Object.keys(module)
    .filter((name) => name !== '__esModule' && name !== 'default')
    .sort()

for (const [ours, reference, expected] of [
  [
    'driftdb',
    'driftdb-reference',
    ['api', 'compactor', 'http', 'index', 'latency', 'presence', 'reducer', 'state', 'types'],
  ],
  ['driftdb-react', 'driftdb-react-reference', ['index']],
]) {
  test(`${ours}: every dist/ module of the published 1.0.12 resolves, for import and require, with its exports`, async () => {
    const modules = publishedModules(reference)
    assert.deepStrictEqual(modules, expected, `the published ${reference} ships these dist/ modules`)
    for (const name of modules) {
      const wanted = exportNames(require(`${reference}/dist/${name}`))
      for (const path of [`${ours}/dist/${name}`, `${ours}/dist/${name}.js`]) {
        const imported = await import(path)
        const required = require(path)
        for (const [how, module] of [
          ['import', imported],
          ['require', required],
        ]) {
          const missing = wanted.filter((n) => !(n in module) || module[n] === undefined)
          assert.deepStrictEqual(missing, [], `${how} '${path}' lacks 1.0.12's exports`)
        }
        // import and require reach the same API (separate ESM and CommonJS builds of the same source).
        assert.deepStrictEqual(exportNames(required), exportNames(imported), `${path}: import and require agree`)
      }
    }
  })
}

test('the root exports Compactor and Compactable, the same classes as dist/compactor', async () => {
  const root = await import('driftdb')
  const compactor = await import('driftdb/dist/compactor')
  assert.equal(root.Compactor, compactor.Compactor)
  assert.equal(root.Compactable, compactor.Compactable)
  assert.equal(require('driftdb').Compactor, require('driftdb/dist/compactor.js').Compactor)
})
