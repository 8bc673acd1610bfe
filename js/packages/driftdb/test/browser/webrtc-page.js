// The page of browser-webrtc.test.mjs: a DbConnection to the room in /input.json and WebRtcConnections as the client
// named in the URL (?name=alice), left on `window` for the test to drive; received messages are kept in order.
import { DbConnection, WebRtcConnections } from 'driftdb'

const { room } = await (await fetch('/input.json')).json()
const name = new URLSearchParams(location.search).get('name')
const db = new DbConnection()
await db.connect({ room, transport: 'websocket' })
const rtc = new WebRtcConnections({ db, clientId: name, key: 'rtc', presenceIntervalMs: 500 })
const received = []
rtc.messageListener.addListener((m) =>
  received.push({
    from: m.from,
    channel: m.channel,
    data: typeof m.data === 'string' ? m.data : [...new Uint8Array(m.data)],
  }),
)
Object.assign(window, { db, rtc, received, room, ready: true })
