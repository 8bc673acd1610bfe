// Loaded in Chromium by browser.test.mjs: exposes the driftdb package and a small app per page.
import * as driftdb from 'driftdb'

window.driftdb = driftdb
window.app = null

/** Connects to `room` and starts shared state, a reducer, presence, a volatile cursor and an append log. */
window.startApp = async (room, { name, transport }) => {
  const db = new driftdb.DbConnection()
  const app = {
    db,
    name,
    state: null,
    reduced: [],
    presence: {},
    cursor: null,
    big: null,
    log: [],
    resets: 0,
    transports: [],
  }
  window.app = app
  db.statusListener.addListener((s) => {
    if (s.connected) app.transports.push(s.transport)
  })
  db.resetListener.addListener(() => app.resets++)
  app.wire = []
  db.messageListener.addListener((m) => app.wire.push({ type: m.type, key: m.key, nonce: m.nonce }))
  const t0 = performance.now()
  await db.connect({ room, transport, backoff: { initialMs: 100, maxMs: 1_000 }, connectTimeoutMs: 3_000 })
  app.connectMs = performance.now() - t0
  app.stateListener = new driftdb.StateListener({ key: 'state', db, callback: (v) => (app.state = v) })
  app.stateListener.subscribe()
  app.reducer = new driftdb.Reducer({
    key: 'reduced',
    reducer: (s, a) => [...s, a],
    initialValue: [],
    db,
    callback: (s) => (app.reduced = s),
  })
  app.reducer.subscribe()
  app.presenceListener = new driftdb.PresenceListener({
    initialState: { name },
    db,
    clientId: name,
    maxPresenceInterval: 300,
    callback: (p) => (app.presence = p),
  })
  app.presenceListener.subscribe()
  db.subscribe('cursor', (e) => {
    if (typeof e.value === 'object' && e.value !== null && 'x' in e.value) app.cursor = e.value
    else app.big = e.value
  })
  db.subscribe('log', (e) => app.log.push(e.value))
  return db.status
}

/** Subscribes to `key`, collecting its values in `app.keys[key]`; returns an unsubscribe function name. */
window.watchKey = (key) => {
  const app = window.app
  app.keys ??= {}
  app.keys[key] = []
  app.watchers ??= {}
  app.watchers[key] = (e) => app.keys[key].push(e.value)
  app.db.subscribe(key, app.watchers[key])
}
window.unwatchKey = (key) => window.app.db.unsubscribe(key, window.app.watchers[key])
window.keyValues = (key) => window.app.keys[key]
window.wireFor = (key) => window.app.wire.filter((m) => m.key === key).length

window.appSnapshot = () => {
  const a = window.app
  return {
    status: a.db.status,
    connectMs: a.connectMs,
    state: a.state,
    reduced: a.reduced,
    presence: Object.keys(a.presence).sort(),
    cursor: a.cursor,
    bigLength: typeof a.big === 'string' ? a.big.length : null,
    log: a.log,
    resets: a.resets,
    transports: a.transports,
    pending: a.reducer.pending.length,
    stats: a.db.connection ? { ...a.db.connection.stats } : null,
  }
}
