// A fresh app that installed the packed `driftdb` and `driftdb-react` tarballs. Bundled with esbuild, then run in
// Node against a real server: one `driftdb` client writes a key another one subscribes to, a React tree under
// `DriftDBProvider` connects to the same room, and a Yjs document syncs through `y-driftdb`. `RoomQRCode` renders
// an image when the app installed `qrcode` (an optional peer dependency), else a link and one warning. Prints what it
// saw as one JSON line.
/* global process, console, setTimeout -- it runs in Node */
import { Api, DbConnection } from 'driftdb'
import { DriftDBProvider, RoomQRCode, useConnectionStatus } from 'driftdb-react'
import React from 'react'
import TestRenderer, { act } from 'react-test-renderer'
import { WebSocket } from 'ws'
import { DriftDBProvider as YjsProvider } from 'y-driftdb'
import * as Y from 'yjs'

globalThis.IS_REACT_ACT_ENVIRONMENT = true
globalThis.WebSocket = WebSocket
const warnings = []
console.warn = (...args) => warnings.push(args.map(String).join(' '))

function Status() {
  const status = useConnectionStatus()
  return <p>{status.connected ? `connected ${status.debugUrl}` : 'connecting'}</p>
}

const api = process.argv[2]
const room = await new Api(api).newRoom()
const writer = new DbConnection()
const reader = new DbConnection()
await Promise.all([writer.connect({ room, WebSocket }), reader.connect({ room, WebSocket })])
const received = new Promise((resolve) => reader.subscribe('greeting', ({ value }) => resolve(value)))
writer.send({ type: 'push', key: 'greeting', value: 'hello from the tarballs', action: { type: 'append' } })

let renderer
act(() => {
  renderer = TestRenderer.create(
    <DriftDBProvider api={api} room={room.room}>
      <Status />
      <RoomQRCode url={`https://app.example/?_driftdb_room=${room.room}`} />
    </DriftDBProvider>,
  )
})
let status = ''
let qr = null
for (const deadline = Date.now() + 10_000; Date.now() < deadline && (!status.startsWith('connected') || !qr);) {
  await act(() => new Promise((resolve) => setTimeout(resolve, 50)))
  status = renderer.root.findByType('p').children.join('')
  const [img] = renderer.root.findAllByType('img')
  const [link] = renderer.root.findAllByType('a')
  if (img) qr = { img: img.props.src }
  else if (link) qr = { link: link.props.href }
}
const greeting = await received

// y-driftdb: a document edited through one connection arrives through the other.
const [docA, docB] = [new Y.Doc(), new Y.Doc()]
const providers = [
  new YjsProvider({ db: writer, doc: docA, key: 'doc' }),
  new YjsProvider({ db: reader, doc: docB, key: 'doc' }),
]
docA.getText('t').insert(0, 'shared text')
let text = ''
for (const deadline = Date.now() + 10_000; Date.now() < deadline && text !== 'shared text';) {
  await new Promise((resolve) => setTimeout(resolve, 50))
  text = docB.getText('t').toString()
}
for (const provider of providers) provider.destroy()
act(() => renderer.unmount())
console.log(JSON.stringify({ greeting, status, text, room: room.room, qr, warnings }))
process.exit(0)
