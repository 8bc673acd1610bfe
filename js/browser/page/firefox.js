// Loaded in headless Firefox by test/firefox.test.mjs, which cannot script the page: it reads its input from
// /input.json, runs one driftdb client per entry of `input.clients` in the room `input.room`, and reports what each
// client sees to POST /report (named after the client) every REPORT_MS until the test kills the browser.
//
// Each client appends `<name>-hello` to the `log` key, sends a volatile `cursor` relay `{from, x}` every REPORT_MS
// (a datagram on WebTransport) and, when `setsState` is true, sets the shared `state` to `{from: name}` once.
import * as driftdb from 'driftdb'

const REPORT_MS = 150

const report = (name, body) =>
  fetch('/report', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, name }),
  }).catch(() => {})

window.addEventListener('error', (event) => report('error', { message: String(event.error?.stack ?? event.message) }))
window.addEventListener('unhandledrejection', (event) =>
  report('error', { message: String(event.reason?.stack ?? event.reason) }),
)

const input = await (await fetch('/input.json')).json()
report('page', { userAgent: navigator.userAgent, webTransport: typeof WebTransport })

async function runClient({ name, transport, headStartMs, setsState }) {
  const db = new driftdb.DbConnection()
  const seen = { state: null, log: [], cursors: {}, connectMs: null }
  const state = new driftdb.StateListener({ key: 'state', db, callback: (value) => (seen.state = value) })
  state.subscribe()
  db.subscribe('log', (event) => seen.log.push(event.value))
  db.subscribe('cursor', (event) => (seen.cursors[event.value.from] = event.value.x))
  // Reports start at once, so that a client that cannot connect is seen as such.
  let x = 0
  setInterval(() => {
    db.send({ type: 'push', key: 'cursor', value: { from: name, x: x++ }, action: { type: 'relay' }, volatile: true })
    report(name, {
      connected: db.status.connected,
      transport: db.status.transport ?? null,
      ...seen,
      stats: db.connection ? { ...db.connection.stats } : null,
    })
  }, REPORT_MS)
  const started = performance.now()
  await db.connect({ room: input.room, transport, headStartMs, backoff: { initialMs: 100, maxMs: 1_000 } })
  seen.connectMs = performance.now() - started
  db.send({ type: 'push', key: 'log', value: `${name}-hello`, action: { type: 'append' } })
  if (setsState) state.setStateOptimistic({ from: name })
}

for (const client of input.clients) {
  runClient(client).catch((error) => report('error', { message: `${client.name}: ${error?.stack ?? error}` }))
}
