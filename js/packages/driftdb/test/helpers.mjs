// Shared helpers for the driftdb package tests (run on the compiled dist/).
import { WebSocket } from 'ws'
import net from 'node:net'
import { after, before } from 'node:test'
import { startServer } from '../../../test-support/server.mjs'
import { Api } from '../dist/index.js'

export { startServer }
export * from '../dist/index.js'
export { WebSocket }

export { eventually, sleep, waitFor } from '../../../test-support/wait.mjs'

/**
 * Starts one server for the calling test file. Returns `{server, api, open}`: `server` and `api` (an Api on it) are
 * set before the first test; connections pushed onto `open` are disconnected, and the server stopped, after the last.
 */
export function useServer() {
  const env = { server: null, api: null, open: [] }
  before(async () => {
    env.server = await startServer()
    env.api = new Api(env.server.url)
  })
  after(async () => {
    for (const db of env.open) db.disconnect()
    await env.server?.stop()
  })
  return env
}

/** Fast reconnect settings for tests. */
export const FAST = {
  WebSocket,
  backoff: { initialMs: 50, maxMs: 300 },
  connectTimeoutMs: 1_000,
}

/**
 * A TCP proxy on a fixed local port in front of a server whose port may change: lets tests restart the server
 * (or cut every connection, or freeze traffic) while clients keep one URL.
 */
export async function startProxy(targetPort) {
  let target = targetPort
  let frozen = false
  const sockets = new Set()
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('data', (d) => {
      if (!frozen) upstream.write(d)
    })
    upstream.on('data', (d) => {
      if (!frozen) client.write(d)
    })
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', drop)
    upstream.on('close', drop)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const port = server.address().port
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    setTarget(p) {
      target = p
    },
    /** Stops forwarding bytes without closing anything (a dead network path). */
    freeze(on = true) {
      frozen = on
    },
    cutAll() {
      for (const s of sockets) s.destroy()
      sockets.clear()
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    },
  }
}

/** Collects the values a listener receives. */
export function collector() {
  const values = []
  const fn = (ev) => values.push(ev)
  fn.values = values
  return fn
}
