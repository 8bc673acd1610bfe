// Composes the README picture (docs/demos.png) from the screenshots the tests saved in test-artifacts/demos/.
// Run after the tests: node demos/test/docs-screenshot.mjs (from js/).
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { chromium } from 'playwright-core'

import { ARTIFACTS } from './helpers.mjs'

const OUT = fileURLToPath(new URL('../../../docs/demos.png', import.meta.url))
const TILES = [
  ['cursors', 'Live cursors'],
  ['game', 'Coin chase'],
  ['tictactoe', 'Tic-tac-toe'],
  ['counter', 'Counter'],
]

const images = []
for (const [name, title] of TILES) {
  const path = join(ARTIFACTS, `${name}.png`)
  if (!existsSync(path)) throw new Error(`${path} is missing: run the demo tests first`)
  images.push({ title, src: `data:image/png;base64,${(await readFile(path)).toString('base64')}` })
}

const html = `<!doctype html><meta charset="utf-8"><style>
body { margin: 0; background: #e9ebf3; font-family: system-ui, sans-serif; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; padding: 18px; width: 1640px; box-sizing: border-box; }
figure { margin: 0; background: #fff; border-radius: 12px; overflow: hidden; box-shadow: 0 2px 10px rgb(0 0 0 / 10%); }
figure img { display: block; width: 100%; height: 470px; object-fit: cover; object-position: top left; }
</style><div class="grid">${images.map((i) => `<figure><img alt="${i.title}" src="${i.src}"></figure>`).join('')}</div>`

const profile = await mkdtemp(join(tmpdir(), 'driftdb-docs-shot-'))
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: false,
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  viewport: { width: 1640, height: 1000 },
  timeout: 30_000,
})
try {
  const page = context.pages()[0] ?? (await context.newPage())
  await page.setContent(html)
  await page.locator('.grid').screenshot({ path: OUT })
  console.log(`wrote ${OUT}`)
} finally {
  await context.close()
  await rm(profile, { recursive: true, force: true })
}
