// Headless Firefox for the JS browser tests: Debian's `firefox-esr` (or $FIREFOX), which playwright-core cannot drive.
//
//   const firefox = await launchFirefox('http://127.0.0.1:PORT/page')
//   ... the page reports its results back over HTTP (see site.mjs) ...
//   await firefox.close() // kills the browser by pid and removes its profile
//
// Every launch gets a fresh temporary profile whose user.js skips first-run pages and background traffic. Firefox
// runs in its own process group, so close() ends the content processes too; every launched Firefox is killed when
// the test process exits, however it exits.

import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { whenProcessEnds } from './cleanup.mjs'

export const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr'

/** Preferences of a test profile: no first-run or welcome pages, no updates, telemetry or other background traffic. */
const PREFS = {
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'browser.startup.page': 0,
  'startup.homepage_welcome_url': '',
  'startup.homepage_welcome_url.additional': '',
  'browser.aboutwelcome.enabled': false,
  'browser.newtabpage.enabled': false,
  'browser.sessionstore.resume_from_crash': false,
  'browser.tabs.warnOnClose': false,
  'toolkit.startup.max_resumed_crashes': -1,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'toolkit.telemetry.reportingpolicy.firstRun': false,
  'toolkit.telemetry.enabled': false,
  'app.update.auto': false,
  'app.update.enabled': false,
  'app.normandy.enabled': false,
  'extensions.update.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
}

const userJs = () =>
  Object.entries(PREFS)
    .map(([name, value]) => `user_pref(${JSON.stringify(name)}, ${JSON.stringify(value)});\n`)
    .join('')

/** Process group ids and profiles of the Firefoxes launched by this process that have not been closed. */
const running = new Map()

function killGroup(pid) {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    // Already gone.
  }
}

whenProcessEnds(() => {
  for (const [pid, profile] of running) {
    killGroup(pid)
    rmSync(profile, { recursive: true, force: true })
  }
})

/**
 * Starts `firefox-esr --headless --no-remote --profile <fresh dir> url`. Resolves once the process is spawned; the
 * page tells the test when it is ready.
 *
 * @param {string} url
 * @returns {Promise<{pid: number, profile: string, exited: Promise<{code: number|null, signal: string|null}>,
 *   logs: () => string, close: () => Promise<void>}>}
 */
export async function launchFirefox(url) {
  const profile = await mkdtemp(join(tmpdir(), 'driftdb-firefox-'))
  await writeFile(join(profile, 'user.js'), userJs())
  const child = spawn(FIREFOX, ['--headless', '--no-remote', '--profile', profile, url], {
    detached: true, // its own process group: content processes are killed with it
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: '1', MOZ_DISABLE_AUTO_SAFE_MODE: '1' },
  })
  const spawned = new Promise((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  try {
    await spawned
  } catch (error) {
    await rm(profile, { recursive: true, force: true })
    throw new Error(`could not start ${FIREFOX}: ${error.message}`, { cause: error })
  }
  const pid = child.pid
  running.set(pid, profile)
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  let log = ''
  const keep = (chunk) => {
    log = (log + chunk).slice(-16 * 1024)
  }
  child.stdout.setEncoding('utf8').on('data', keep)
  child.stderr.setEncoding('utf8').on('data', keep)
  return {
    pid,
    profile,
    exited,
    logs: () => log,
    /** Kills the whole process group by pid (content processes too, even if Firefox itself has exited), waits for
     *  Firefox to exit and removes the profile. */
    async close() {
      killGroup(pid)
      await exited
      running.delete(pid)
      await rm(profile, { recursive: true, force: true })
    },
  }
}
