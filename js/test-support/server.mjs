// Spawns a DriftDB server for JS test suites.
//
//   const server = await startServer({ args: ['--some-flag'] })
//   server.url   // 'http://127.0.0.1:PORT' as printed by the server
//   await server.stop()
//
// The binary is taken from $DRIFTDB_BIN, or <repo>/target/debug/driftdb (build it with `cargo build`).
// The server's stderr is kept in memory and printed only when something goes wrong (startup failure,
// unexpected exit, or a caller asking for it through printLogs()), or live when $DRIFTDB_TEST_VERBOSE
// is set. Every spawned server is killed when the test process exits, however it exits.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

import { whenProcessEnds } from './cleanup.mjs'

const DEFAULT_BIN = fileURLToPath(new URL('../../target/debug/driftdb', import.meta.url))
const LISTENING = /listening on (http:\/\/\S+)/
const VERBOSE = Boolean(process.env.DRIFTDB_TEST_VERBOSE)
const MAX_LOG_CHARS = 64 * 1024

/** Servers spawned by this process that have not exited yet. */
const running = new Set()

whenProcessEnds(() => {
  for (const child of running) child.kill('SIGKILL')
})

/** `driftdb serve --help` output, `null` if it failed; computed once. */
let serveHelp

/** True unless `driftdb serve --help` runs fine and does not mention `flag`. */
function supportsFlag(bin, flag) {
  if (serveHelp === undefined) {
    const help = spawnSync(bin, ['serve', '--help'], { encoding: 'utf8', timeout: 10_000 })
    serveHelp = help.status !== 0 ? null : `${help.stdout}${help.stderr}`
  }
  return serveHelp === null || serveHelp.includes(flag)
}

/** Keeps the tail of a stream's text, at most MAX_LOG_CHARS characters. */
class LogTail {
  text = ''
  add(chunk) {
    this.text += chunk
    if (this.text.length > MAX_LOG_CHARS) this.text = this.text.slice(-MAX_LOG_CHARS)
  }
}

/**
 * Starts `driftdb serve --port 0 [--no-webtransport] ...args` and resolves once it prints its URL.
 *
 * `port` pins the port (a restart test reconnects its clients to the same URL); 0 picks a free one.
 *
 * @param {{args?: string[], port?: number, startTimeoutMs?: number}} [options]
 * @returns {Promise<{url: string, port: number, process: import('node:child_process').ChildProcess,
 *   stop: () => Promise<void>, kill: () => Promise<void>, logs: () => string, printLogs: (reason?: string) => void}>}
 */
export async function startServer({ args = [], port = 0, startTimeoutMs = 30_000 } = {}) {
  const bin = process.env.DRIFTDB_BIN || DEFAULT_BIN
  if (!existsSync(bin)) {
    throw new Error(`DriftDB server binary not found at ${bin}: run \`cargo build\` or set DRIFTDB_BIN`)
  }
  const argv = ['serve', '--port', String(port)]
  if (supportsFlag(bin, '--no-webtransport')) argv.push('--no-webtransport')
  // Suites keep rooms in memory unless they pass their own `--storage`/`--data-dir` (a temp dir).
  if (supportsFlag(bin, '--storage') && !args.includes('--storage')) argv.push('--storage', 'memory')
  argv.push(...args)

  const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child)
      resolve({ code, signal })
    })
  })

  const log = new LogTail()
  const printLogs = (reason = 'server log') => {
    process.stderr.write(`--- ${reason}: driftdb ${argv.join(' ')} (pid ${child.pid}) ---\n`)
    process.stderr.write(log.text.endsWith('\n') || !log.text ? log.text : `${log.text}\n`)
    process.stderr.write('--- end of server log ---\n')
  }
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk) => {
    log.add(chunk)
    if (VERBOSE) process.stderr.write(chunk)
  })

  // stdout is read for the whole life of the server (a full pipe would block it) and is logged too.
  let stdoutLine = ''
  child.stdout.setEncoding('utf8')
  const listening = new Promise((resolve) => {
    child.stdout.on('data', (chunk) => {
      log.add(chunk)
      if (VERBOSE) process.stderr.write(chunk)
      if (stdoutLine === null) return
      stdoutLine += chunk
      const match = LISTENING.exec(stdoutLine)
      if (match) {
        stdoutLine = null
        resolve(match[1])
      }
    })
  })

  let timer
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, startTimeoutMs, 'timeout')
  })
  const started = await Promise.race([listening, exited, timeout])
  clearTimeout(timer)
  if (typeof started !== 'string' || started === 'timeout') {
    const why =
      started === 'timeout'
        ? `did not print "listening on http://..." within ${startTimeoutMs} ms`
        : `exited during startup (code ${started.code}, signal ${started.signal})`
    child.kill('SIGKILL')
    printLogs('server failed to start')
    throw new Error(`DriftDB server ${why}`)
  }

  // Reported by stop(): a server that dies on its own during a test is a bug worth seeing.
  let stopping = false
  exited.then(({ code, signal }) => {
    if (!stopping) printLogs(`server exited unexpectedly (code ${code}, signal ${signal})`)
  })

  const url = started.replace(/\/+$/, '')
  return {
    url,
    port: Number(new URL(url).port),
    process: child,
    logs: () => log.text,
    printLogs,
    /** Sends SIGKILL (a crash: nothing is cleaned up) and waits for the exit. */
    async kill() {
      stopping = true
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await exited
      }
    },
    /** Sends SIGTERM and waits for the exit; SIGKILL if the server is still up after 5 s. */
    async stop() {
      stopping = true
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const kill = setTimeout(() => child.kill('SIGKILL'), 5_000)
        await exited
        clearTimeout(kill)
      }
    },
  }
}

/**
 * A TCP port that is free now: a server restarted on it comes back where its clients reconnect to.
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}
