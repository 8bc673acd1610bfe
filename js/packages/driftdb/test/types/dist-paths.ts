// Type-level check of the 1.0.12 module paths under `dist/`, as ES module imports (with and without `.js`).
// Apps written for 1.0.12 import from these files directly, e.g. the reference's CRDT demo:
// `import { Compactable, Compactor } from 'driftdb/dist/compactor'`. Checked by `tsc -p test/types` in `pretest`.
import { Api, type RoomResult } from 'driftdb/dist/api'
import { Compactable, Compactor } from 'driftdb/dist/compactor'
import { HttpConnection } from 'driftdb/dist/http.js'
import { DbConnection } from 'driftdb/dist/index'
import { LatencyTest } from 'driftdb/dist/latency'
import { PresenceListener, type WrappedPresenceMessage } from 'driftdb/dist/presence'
import { Reducer } from 'driftdb/dist/reducer'
import { StateListener } from 'driftdb/dist/state'
import type { Action, ConnectionStatus, Key, MessageFromDb, MessageToDb, SequenceValue } from 'driftdb/dist/types'
import type { Compactor as RootCompactor } from 'driftdb'

/** A counter, as an app would write a Compactable. */
class Counter extends Compactable<number, number> {
  override optimistic = true
  applyAction(state: number, action: number): number {
    return state + action
  }
  initialState(): number {
    return 0
  }
}

export async function app(apiUrl: string): Promise<number> {
  const room: RoomResult = await new Api(apiUrl).newRoom()
  const db = new DbConnection()
  await db.connect(room.socket_url)
  const compactor: RootCompactor<number, number> = new Compactor<number, number>({
    key: 'count' satisfies Key,
    compactable: new Counter(),
    sizeThreshold: 10,
    db,
    callback: (state: number) => void state,
  })
  compactor.subscribe()
  compactor.dispatch(1)
  const value: SequenceValue = { value: 1, seq: compactor.lastConfirmedSeq }
  compactor.onSequenceValue(value)
  compactor.onSize(11)
  compactor.destroy()

  const action: Action = { type: 'compact', seq: 1 }
  const message: MessageToDb = { type: 'push', key: 'k', value: 1, action }
  const reply: MessageFromDb = await new HttpConnection(room.http_url).send(message)
  const status: ConnectionStatus = db.status
  const test = new LatencyTest()
  test.receivedResponse()
  const presence = new PresenceListener<{ x: number }>({
    initialState: { x: 0 },
    db,
    clientId: 'c',
    callback: (peers: Record<string, WrappedPresenceMessage<{ x: number }>>) => void peers,
  })
  presence.destroy()
  new StateListener<number>({ db, key: 's', callback: (n: number) => void n }).destroy()
  new Reducer<number, number>({ db, key: 'r', reducer: (s, a) => s + a, initialValue: 0, callback: () => {} })
  void reply
  void status
  return (await test.result()) + compactor.state
}
