// Type-level compatibility: code written against the driftdb 1.0.12 typings compiles against this package.
// Checked by `tsc -p test/types` in `pretest`.
import {
  Api,
  DbConnection,
  HttpConnection,
  PresenceListener,
  Reducer,
  StateListener,
  uniqueClientId,
  type ConnectionStatus,
  type Key,
  type MessageFromDb,
  type MessageToDb,
  type PresenceMessage,
  type RoomResult,
  type SequenceValue,
  type WrappedPresenceMessage,
} from 'driftdb'

export async function app(apiUrl: string): Promise<void> {
  const api = new Api(apiUrl)
  const room: RoomResult = await api.newRoom()
  const again: RoomResult = await api.getRoom(room.room)
  const urls: string[] = [again.socket_url, again.http_url, api.apiUrl]

  const db = new DbConnection()
  await db.connect(room.socket_url)
  await db.connect(room.socket_url, true)
  const onStatus = (status: ConnectionStatus) => {
    if (status.connected) urls.push(status.debugUrl)
  }
  db.statusListener.addListener(onStatus)
  db.statusListener.removeListener(onStatus)
  db.messageListener.addListener((message: MessageFromDb) => {
    switch (message.type) {
      case 'push':
        urls.push(message.key, String(message.seq), String(message.value))
        break
      case 'init':
        message.data.forEach((sv: SequenceValue) => urls.push(String(sv.seq)))
        break
      case 'stream_size':
        urls.push(String(message.size))
        break
      case 'pong':
        break
      case 'error':
        urls.push(message.message)
        break
    }
  })
  const key: Key = 'k'
  const listener = (event: SequenceValue) => urls.push(String(event.value))
  const size = (n: number) => urls.push(String(n))
  db.subscribe(key, listener, size)
  db.subscribe(key, listener)
  db.unsubscribe(key, listener, size)
  const messages: MessageToDb[] = [
    { type: 'push', action: { type: 'append' }, value: 1, key },
    { type: 'push', action: { type: 'compact', seq: 3 }, value: { reset: 1 }, key },
    { type: 'get', key, seq: 0 },
    { type: 'get', key },
    { type: 'ping', nonce: 1 },
    { type: 'ping' },
  ]
  messages.forEach((m) => db.send(m))
  const latency: Promise<number> | null = db.testLatency()
  if (latency) urls.push(String(await latency))
  const connected: boolean = db.status.connected
  const fields = [db.queue.length, db.dbUrl, db.cbor, db.closed, db.reconnectLoopHandle, db.activeLatencyTest]
  urls.push(String(connected), String(fields.length), String(db.subscriptions.subscriptions.size))
  db.disconnect()

  const http = new HttpConnection(room.http_url)
  const reply: MessageFromDb = await http.send({ type: 'ping' })
  urls.push(reply.type)

  const state = new StateListener<{ n: number }>({ callback: (v) => urls.push(String(v.n)), db, key: 's' })
  state.subscribe()
  state.setStateOptimistic({ n: 1 })
  const current: { n: number } | null = state.state
  urls.push(String(current?.n), String(state.debounceMillis), state.randId)
  state.destroy()

  const presence = new PresenceListener<{ name: string }>({
    initialState: { name: 'a' },
    db,
    clientId: uniqueClientId(),
    key: '__presence',
    callback: (all: Record<string, WrappedPresenceMessage<{ name: string }>>) =>
      Object.values(all).forEach((p) => urls.push(p.value.name, String(p.lastSeen))),
    minPresenceInterval: 20,
    maxPresenceInterval: 1000,
  })
  presence.subscribe()
  presence.updateState({ name: 'b' })
  presence.destroy()
  const message: PresenceMessage<number> = { client: 'c', value: 1 }
  urls.push(message.client)

  const reducer = new Reducer<number, number>({
    key: 'r',
    reducer: (s, a) => s + a,
    initialValue: 0,
    sizeThreshold: 30,
    db,
    callback: (s: number) => urls.push(String(s)),
  })
  reducer.subscribe()
  reducer.dispatch(1)
  reducer.destroy()
}
