// A real DriftDB cluster for JS test suites: one `nats-server -js` (Debian package `nats-server`) on a free loopback
// port with its store in a temp dir, and N `driftdb serve --cluster` nodes (memory storage, no WebTransport).
//
//   const cluster = await startCluster({ nodes: 3 })
//   cluster.nodes[0].url             // 'http://127.0.0.1:PORT'
//   await cluster.ownerOf('room')    // the node whose socket_url the room info names
//   await cluster.nodes[1].kill()    // SIGKILL, by pid
//   await cluster.stop()             // every node, then nats-server, then the store
//
// nats-server is taken from $NATS_SERVER, else `nats-server` on the PATH. Every process is killed by pid when the
// test process exits, however it exits (see cleanup.mjs).

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { whenProcessEnds } from './cleanup.mjs'
import { freePort, startServer } from './server.mjs'
import { sleep } from './wait.mjs'

const NATS = process.env.NATS_SERVER || 'nats-server'
const SETTLE_MS = 10_000

/** nats-server processes started by this process and not yet ended, with their store dirs. */
const running = new Map()

whenProcessEnds(() => {
  for (const [child, store] of running) {
    child.kill('SIGKILL')
    rmSync(store, { recursive: true, force: true })
  }
})

/** Resolves true once a TCP connection to 127.0.0.1:`port` succeeds, false after `timeout` ms. */
async function accepts(port, timeout) {
  const deadline = Date.now() + timeout
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return true
    await sleep(50)
  }
  return false
}

/**
 * Starts `nats-server -js -a 127.0.0.1 -p PORT -sd TEMPDIR` and resolves once it accepts connections.
 * @returns {Promise<{url: string, port: number, stop: () => Promise<void>}>}
 */
export async function startNats() {
  const store = mkdtempSync(join(tmpdir(), 'driftdb-nats-'))
  const port = await freePort()
  const child = spawn(NATS, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let log = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk) => (log = `${log}${chunk}`.slice(-16_384)))
  running.set(child, store)
  const exited = new Promise((resolve) => child.once('close', resolve))
  const spawnError = new Promise((resolve) => child.once('error', resolve))
  const up = await Promise.race([accepts(port, SETTLE_MS), spawnError])
  if (up !== true) {
    child.kill('SIGKILL')
    running.delete(child)
    rmSync(store, { recursive: true, force: true })
    const why = up === false ? `did not accept connections within ${SETTLE_MS} ms` : `did not start (${up.message})`
    throw new Error(`${NATS} ${why} (Debian package nats-server: apt-get install nats-server)\n${log}`)
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await exited
      }
      running.delete(child)
      rmSync(store, { recursive: true, force: true })
    },
  }
}

/** A gauge's value in `url`'s `/metrics`, or null. */
async function metric(url, name) {
  try {
    const text = await (await fetch(`${url}/metrics`)).text()
    const line = text.split('\n').find((l) => l.split(/\s+/)[0] === name)
    return line ? Number(line.split(/\s+/)[1]) : null
  } catch {
    return null
  }
}

/** `host:port` of a URL (`ws://…`, `http://…`). */
export const hostOf = (url) => new URL(url).host

/**
 * Starts nats-server and `nodes` cluster nodes (`--cluster URL --node-id node-N`, memory storage) and waits until
 * every node sees all of them. `args` are passed to every node.
 */
export async function startCluster({ nodes: count = 3, args = [] } = {}) {
  const nats = await startNats()
  const nodes = []
  try {
    for (let n = 0; n < count; n++) {
      nodes.push(await startServer({ args: ['--cluster', nats.url, '--node-id', `node-${n}`, ...args] }))
    }
    for (const node of nodes) {
      const deadline = Date.now() + SETTLE_MS
      while ((await metric(node.url, 'driftdb_cluster_nodes')) !== count) {
        if (Date.now() > deadline) throw new Error(`${node.url} did not see ${count} nodes within ${SETTLE_MS} ms`)
        await sleep(100)
      }
    }
  } catch (error) {
    for (const node of nodes) await node.kill()
    await nats.stop()
    throw error
  }

  return {
    nats,
    nodes,
    /** The room info of `room` as `node` answers it (throws on an error status). */
    async roomInfo(room, node = nodes[0]) {
      const response = await fetch(`${node.url}/room/${encodeURIComponent(room)}`)
      if (!response.ok) throw new Error(`GET /room/${room} on ${node.url}: ${response.status} ${await response.text()}`)
      return response.json()
    },
    /** The node the room info names as the room's owner (placing the room if nobody owns it). */
    async ownerOf(room, node = nodes[0]) {
      const info = await this.roomInfo(room, node)
      const owner = nodes.find((n) => hostOf(n.url) === hostOf(info.socket_url))
      if (!owner) throw new Error(`room ${room} is owned by ${info.socket_url}, not one of ${nodes.map((n) => n.url)}`)
      return owner
    },
    /** The room's socket URL on `node` (which may not own it: the node forwards to the owner). */
    socketUrlOn(room, node) {
      const url = new URL(node.url)
      url.protocol = 'ws:'
      url.pathname = `/room/${encodeURIComponent(room)}/connect`
      return url.toString()
    },
    /** Prints every node's log (for a failed test). */
    printLogs(reason = 'cluster log') {
      for (const node of nodes) node.printLogs(`${reason}: ${node.url}`)
    },
    /** Kills every node (SIGKILL, by pid), then nats-server, and removes its store. */
    async stop() {
      for (const node of nodes) await node.kill()
      await nats.stop()
    },
  }
}
