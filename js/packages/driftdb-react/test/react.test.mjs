// Renders the hooks in Node with react-test-renderer against the real server (over WebSocket, `ws` installed as
// the global WebSocket the way a browser has one). `App` uses only the driftdb-react 1.0.12 API: an app written
// for 1.0.12 runs unchanged on this package.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import React from 'react'
import TestRenderer, { act } from 'react-test-renderer'
import { WebSocket } from 'ws'
import { Api, HttpConnection } from 'driftdb'
import { Compactable, Compactor } from 'driftdb/dist/compactor'
import * as Y from 'yjs'
import { startServer } from '../../../test-support/server.mjs'
import { MemoryStorage } from '../../../test-support/storage.mjs'
import { sleep } from '../../../test-support/wait.mjs'
import {
  DriftDBProvider,
  RoomQRCode,
  StatusIndicator,
  useConnectionStatus,
  useDatabase,
  useLatency,
  usePresence,
  useSharedReducer,
  useSharedState,
  useUniqueClientId,
  useVolatileState,
} from '../dist/index.js'

globalThis.IS_REACT_ACT_ENVIRONMENT = true
globalThis.WebSocket = WebSocket

const h = React.createElement

/** Lets React and the network run until `check` passes (it throws until then), bounded in time. */
async function until(check, what, timeout = 5_000) {
  const deadline = Date.now() + timeout
  for (;;) {
    try {
      check()
      return
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${e.message}`)
    }
    await act(async () => {
      await sleep(20)
    })
  }
}

let server
before(async () => {
  server = await startServer()
})
after(async () => {
  await server?.stop()
})

/** An app written against driftdb-react 1.0.12. */
function App({ name, out }) {
  const [text, setText] = useSharedState('text', 'initial')
  const [count, dispatch] = useSharedReducer('counter', (state, action) => state + action, 0)
  const [list, push] = useSharedReducer(
    'list',
    (state, item) => [...state, item],
    3,
    (n) => Array(n).fill('x'),
  )
  const presence = usePresence('users', { name })
  const status = useConnectionStatus()
  const latency = useLatency()
  const clientId = useUniqueClientId()
  const db = useDatabase()
  Object.assign(out, { text, setText, count, dispatch, list, push, presence, status, latency, clientId, db })
  return h('div', null, h(StatusIndicator), h('p', null, `${name}: ${text} ${count}`))
}

function Cursor({ out }) {
  const [pos, setPos, meta] = useVolatileState('cursor', { x: 0, y: 0 })
  Object.assign(out, { pos, setPos, meta })
  return null
}

function mount(room, name, extra = {}) {
  // Each "tab" has its own session storage, so its own client id.
  globalThis.sessionStorage = new MemoryStorage()
  const out = {}
  const cursor = {}
  let renderer
  const tree = (props) =>
    h(DriftDBProvider, { api: server.url, room, ...props }, h(App, { name, out }), h(Cursor, { out: cursor }))
  act(() => {
    renderer = TestRenderer.create(tree(extra))
  })
  return { out, cursor, renderer, update: (props) => act(() => renderer.update(tree(props))) }
}

test('a 1.0.12 app runs unchanged: shared state, reducers, presence, status, latency; two tabs converge', async () => {
  const room = (await new Api(server.url).newRoom()).room
  const a = mount(room, 'alice')
  const b = mount(room, 'bob')
  try {
    await until(() => {
      assert.equal(a.out.status.connected, true)
      assert.equal(b.out.status.connected, true)
    }, 'both connected')
    assert.equal(a.out.status.transport, 'websocket')
    assert.notEqual(a.out.clientId, b.out.clientId)
    assert.deepEqual(a.out.list, ['x', 'x', 'x'], 'init overload')

    act(() => a.out.setText('hello'))
    assert.equal(a.out.text, 'hello', 'optimistic')
    await until(() => assert.equal(b.out.text, 'hello'), 'b sees the text')
    // The function setter receives the current (remote) value.
    act(() => b.out.setText((t) => `${t}!`))
    await until(() => assert.equal(a.out.text, 'hello!'), 'a sees the function update')

    act(() => {
      for (let i = 0; i < 5; i++) {
        a.out.dispatch(1)
        b.out.dispatch(10)
      }
      a.out.push('a')
      b.out.push('b')
    })
    await until(() => {
      assert.equal(a.out.count, 55)
      assert.equal(b.out.count, 55)
      assert.equal(a.out.list.length, 5)
      assert.deepEqual(a.out.list, b.out.list)
    }, 'reducers converge')

    await until(() => {
      assert.deepEqual(a.out.presence[b.out.clientId]?.value, { name: 'bob' })
      assert.deepEqual(b.out.presence[a.out.clientId]?.value, { name: 'alice' })
    }, 'presence')
    await until(() => assert.equal(typeof a.out.latency, 'number'), 'latency')
    assert.match(JSON.stringify(a.renderer.toJSON()), /Connected/)

    // High-rate volatile values: the last one wins.
    act(() => {
      for (let x = 0; x < 50; x++) a.cursor.setPos({ x, y: 1 })
    })
    await until(() => assert.deepEqual(b.cursor.pos, { x: 49, y: 1 }), 'cursor')
    assert.equal(b.cursor.meta.from, a.out.clientId)

    // Bob leaves: Alice's presence drops him (after 2 s of silence).
    act(() => b.renderer.unmount())
    await until(() => assert.equal(a.out.presence[b.out.clientId], undefined), 'bob gone', 4_000)
  } finally {
    act(() => a.renderer.unmount())
    try {
      act(() => b.renderer.unmount())
    } catch {
      // already unmounted
    }
  }
})

test('the provider reconnects when its props change, and the hooks follow the new room', async () => {
  const api = new Api(server.url)
  const first = (await api.newRoom()).room
  const second = await api.newRoom()
  await new HttpConnection(second.http_url).send({
    type: 'push',
    key: 'text',
    value: { v: 'from the second room', i: 'someone' },
    action: { type: 'replace' },
  })
  const a = mount(first, 'alice')
  try {
    await until(() => assert.equal(a.out.status.connected, true), 'connected')
    act(() => a.out.setText('first room'))
    const db = a.out.db
    assert.match(db.dbUrl, new RegExp(first))
    await a.update({ room: second.room })
    await until(() => assert.equal(a.out.text, 'from the second room'), 'state from the new room')
    assert.match(db.dbUrl, new RegExp(second.room))
    assert.equal(a.out.db, db, 'same connection object, reconnected')
    await a.update({ room: second.room, useBinary: true })
    await until(() => assert.equal(a.out.status.connected, true), 'reconnected with CBOR')
    assert.match(db.dbUrl, /\?cbor=true$/)
    await a.update({ room: second.room, useBinary: true, transport: 'websocket' })
    await until(() => assert.equal(a.out.status.transport, 'websocket'), 'transport prop')
  } finally {
    act(() => a.renderer.unmount())
  }
})

test('RoomQRCode renders a QR code locally as a data: URL', async () => {
  const room = (await new Api(server.url).newRoom()).room
  globalThis.sessionStorage = new MemoryStorage()
  let renderer
  act(() => {
    renderer = TestRenderer.create(
      h(
        DriftDBProvider,
        { api: server.url, room },
        h(RoomQRCode, { url: `https://app.example/?_driftdb_room=${room}` }),
      ),
    )
  })
  try {
    await until(() => {
      const img = renderer.root.findByType('img')
      assert.match(img.props.src, /^data:image\/png;base64,/)
    }, 'QR image')
    assert.doesNotMatch(JSON.stringify(renderer.toJSON()), /jamsocket|https?:\/\/(?!app\.example)/)
  } finally {
    act(() => renderer.unmount())
  }
})

// The reference's CRDT demo (js-pkg/apps/demos/src/pages/crdt.tsx), minus its editor: a Yjs document synced by
// `Compactor` from `driftdb/dist/compactor`, a module path apps import directly, through driftdb-react's provider.
class YDocCompactable extends Compactable {
  optimistic = true
  initialState() {
    return new Y.Doc()
  }
  applyAction(doc, update) {
    Y.applyUpdate(doc, update)
    return doc
  }
  packState(state) {
    return Y.encodeStateAsUpdate(state)
  }
  unpackState(update) {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, update)
    return doc
  }
  crdt = true
}

function useYDoc(key) {
  const [, setVersion] = React.useState(0)
  const db = useDatabase()
  const compactor = React.useRef(null)
  if (compactor.current == null) {
    compactor.current = new Compactor({
      db,
      key,
      compactable: new YDocCompactable(),
      callback: () => setVersion((i) => i + 1),
    })
  }
  React.useEffect(() => {
    compactor.current.subscribe()
    const doc = compactor.current.state
    doc.on('update', (update) => {
      compactor.current.dispatch(update)
    })
    return () => {
      compactor.current.destroy()
    }
  }, [])
  return compactor.current.state
}

function CrdtApp({ out }) {
  out.ydoc = useYDoc('text')
  return h('p', null, out.ydoc.getText('text').toString())
}

test('a 1.0.12 app using Compactor from driftdb/dist/compactor (the CRDT demo) syncs a Yjs document', async () => {
  const room = (await new Api(server.url).newRoom()).room
  const tabs = ['a', 'b'].map(() => {
    globalThis.sessionStorage = new MemoryStorage()
    const out = {}
    let renderer
    act(() => {
      renderer = TestRenderer.create(
        h(DriftDBProvider, { api: server.url, room, useBinary: true }, h(CrdtApp, { out })),
      )
    })
    return { out, renderer }
  })
  const [a, b] = tabs
  const text = (tab) => tab.out.ydoc.getText('text').toString()
  try {
    // Edits made before the other tab subscribes are in the stored stream, replayed to it: no need to wait.
    act(() => a.out.ydoc.getText('text').insert(0, 'hello'))
    await until(() => assert.equal(text(b), 'hello'), 'b sees a’s edit')
    act(() => b.out.ydoc.getText('text').insert(5, ' world'))
    await until(() => assert.equal(text(a), 'hello world'), 'a sees b’s edit')
    assert.match(JSON.stringify(a.renderer.toJSON()), /hello world/, 'the callback re-rendered the app')
  } finally {
    for (const tab of tabs) act(() => tab.renderer.unmount())
  }
})
