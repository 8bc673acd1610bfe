// An app written for driftdb-react 1.0.12, unchanged: it uses only that version's API (no room prop, no transport
// prop: the room id goes into the page URL, the transport is chosen automatically).
import { Compactable, Compactor } from 'driftdb/dist/compactor'
import React from 'react'
import { createRoot } from 'react-dom/client'
import {
  DriftDBProvider,
  RoomQRCode,
  StatusIndicator,
  useConnectionStatus,
  usePresence,
  useSharedReducer,
  useSharedState,
  useDatabase,
  useUniqueClientId,
} from 'driftdb-react'

/** A tally kept with 1.0.12's Compactor, imported from its module path as the reference's CRDT demo does. */
class Tally extends Compactable {
  optimistic = true
  initialState() {
    return 0
  }
  applyAction(state, by) {
    return state + by
  }
}

function useTally(key) {
  const db = useDatabase()
  const [tally, setTally] = React.useState(0)
  const compactor = React.useRef(null)
  if (compactor.current == null) {
    compactor.current = new Compactor({ db, key, compactable: new Tally(), callback: setTally })
  }
  React.useEffect(() => {
    compactor.current.subscribe()
    return () => compactor.current.destroy()
  }, [])
  return [tally, compactor.current.dispatch]
}

function App() {
  const [text, setText] = useSharedState('text', '')
  const [count, dispatch] = useSharedReducer('count', (state, action) => state + action, 0)
  const [items, add] = useSharedReducer(
    'items',
    (state, item) => [...state, item],
    0,
    () => [],
  )
  const clientId = useUniqueClientId()
  const presence = usePresence('users', { clientId })
  const status = useConnectionStatus()
  const [tally, addToTally] = useTally('tally')
  return (
    <div>
      <span id="status">{status.connected ? 'connected' : 'disconnected'}</span>
      <span id="text">{text}</span>
      <span id="count">{count}</span>
      <span id="items">{items.join(',')}</span>
      <span id="peers">{Object.keys(presence).length}</span>
      <input id="input" value={text} onChange={(e) => setText(e.target.value)} />
      <button id="inc" onClick={() => dispatch(1)}>
        +1
      </button>
      <button id="bang" onClick={() => setText((t) => `${t}!`)}>
        !
      </button>
      <button id="add" onClick={() => add(clientId.slice(0, 4))}>
        add
      </button>
      <span id="tally">{tally}</span>
      <button id="tally-up" onClick={() => addToTally(5)}>
        +5
      </button>
      <StatusIndicator />
      <RoomQRCode />
    </div>
  )
}

createRoot(document.getElementById('root')).render(
  <DriftDBProvider api={window.DRIFTDB_API}>
    <App />
  </DriftDBProvider>,
)
