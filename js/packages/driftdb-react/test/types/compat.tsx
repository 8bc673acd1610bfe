// Type-level compatibility: components written against the driftdb-react 1.0.12 typings compile against this
// package. Checked by `tsc -p test/types` in `pretest`.
import type { ConnectionStatus, DbConnection, WrappedPresenceMessage } from 'driftdb'
import {
  DatabaseContext,
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
} from 'driftdb-react'
import React from 'react'

function Widgets(): React.ReactElement {
  const db: DbConnection = useDatabase()
  const [text, setText] = useSharedState<string>('text', '')
  const [count, dispatch] = useSharedReducer('count', (s: number, a: number) => s + a, 0)
  const [list, add] = useSharedReducer(
    'list',
    (s: string[], a: string) => [...s, a],
    3,
    (n: number) => Array<string>(n).fill('x'),
  )
  const status: ConnectionStatus = useConnectionStatus()
  const latency: number | null = useLatency()
  const clientId: string = useUniqueClientId()
  const presence: Record<string, WrappedPresenceMessage<string>> = usePresence('users', clientId)
  const context: React.Context<DbConnection | null> = DatabaseContext
  setText('a')
  setText((t) => t + 'b')
  dispatch(1)
  add('y')
  return (
    <div>
      {text} {count} {list.join()} {String(status.connected)} {latency} {Object.keys(presence).length}
      {String(db.status.connected)} {String(context.displayName)}
      <StatusIndicator />
      <RoomQRCode />
    </div>
  )
}

export const App = (): React.ReactElement => (
  <DriftDBProvider api="http://localhost:8080/" room="abc" useBinary={false}>
    <Widgets />
  </DriftDBProvider>
)
export const AppWithoutRoom = (): React.ReactElement => (
  <DriftDBProvider api="http://localhost:8080/">
    <Widgets />
  </DriftDBProvider>
)
