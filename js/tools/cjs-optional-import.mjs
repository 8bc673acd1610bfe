// Keeps an optional dependency optional in tsc's CommonJS output. tsc turns `await import('M')` into
// `await Promise.resolve().then(() => __importStar(require('M')))`: the `require` sits in an arrow function, so a bundler
// (esbuild, webpack) no longer sees it inside the source's try/catch and fails the build when M is not installed. This
// rewrites each such site, which must be inside a try block in the source, to `await __importStar(require('M'))`: the
// same module, loaded at the same point, the failure still caught. It fails when a site is not found exactly once, so
// a change of tsc's output cannot silently undo it. Usage: node cjs-optional-import.mjs <file> <module>...
import { readFileSync, writeFileSync } from 'node:fs'
import process from 'node:process'

const [file, ...modules] = process.argv.slice(2)
if (!file || modules.length === 0) throw new Error('usage: cjs-optional-import.mjs <file> <module>...')
let code = readFileSync(file, 'utf8')
for (const name of modules) {
  const quoted = `['"]${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}['"]`
  const site = new RegExp(
    `Promise\\.resolve\\(\\)\\.then\\(\\(\\) => (__importStar\\(require\\(${quoted}\\)\\))\\)`,
    'g',
  )
  const found = code.match(site)?.length ?? 0
  if (found !== 1) throw new Error(`${file}: expected one lazy require of ${name}, found ${found}`)
  code = code.replace(site, '$1')
}
writeFileSync(file, code)
