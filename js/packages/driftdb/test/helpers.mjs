// Shared helpers for the driftdb package tests (run on the compiled dist/).
import { WebSocket } from 'ws'
import net from 'node:net'
import { startServer } from '../../../test-support/server.mjs'

export { startServer }
export * from '../dist/index.js'
export { WebSocket }

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Polls `check` until it returns truthy (the result) or throws after `timeout` ms with `what`. */
export async function waitFor(check, { what, timeout = 5_000 } = {}) {
  const deadline = Date.now() + timeout
  let lastError = null
  for (;;) {
    try {
      const result = check()
      if (result) return result
      lastError = null
    } catch (e) {
      lastError = e
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`)
    }
    await sleep(10)
  }
}

/** Retries an assertion until it passes. */
export const eventually = (assertion, opts) =>
  waitFor(() => {
    assertion()
    return true
  }, opts)

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
