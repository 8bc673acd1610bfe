// Marks a directory of tsc's CommonJS output as CommonJS: the packages are `"type": "module"`, so without this
// marker Node would read `dist/cjs/*.js` as ES modules. Usage: node mark-commonjs.mjs <dir>
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import process from 'node:process'

const dir = process.argv[2]
if (!dir) throw new Error('usage: mark-commonjs.mjs <dir>')
writeFileSync(join(dir, 'package.json'), '{ "type": "commonjs" }\n')
