import { useSharedReducer } from 'driftdb-react'
import React from 'react'
import { useKeyStats } from '../debug'

export const COUNTER_KEY = 'counter'
/** The reducer compacts the stream above this many stored entries (driftdb-react's default). */
const COMPACT_ABOVE = 30

export interface CounterState {
  value: number
  /** Actions applied since the start (a compacted stream still remembers them in its reset entry). */
  actions: number
}

export type CounterAction = { type: 'add'; by: number } | { type: 'reset' }

export function counterReducer(state: CounterState, action: CounterAction): CounterState {
  switch (action.type) {
    case 'add':
      return { value: state.value + action.by, actions: state.actions + 1 }
    case 'reset':
      return { value: 0, actions: state.actions + 1 }
    default:
      return state
  }
}

export function CounterDemo(): React.ReactElement {
  const [state, dispatch] = useSharedReducer(COUNTER_KEY, counterReducer, { value: 0, actions: 0 })
  const stats = useKeyStats(COUNTER_KEY)
  const size = stats?.size ?? 0

  const burst = () => {
    for (let i = 0; i < 10; i++) dispatch({ type: 'add', by: 1 })
  }

  return (
    <div className="card demo counter">
      <div className="counter-value" data-testid="counter-value">
        {state.value}
      </div>
      <div className="button-row">
        <button type="button" data-testid="dec" onClick={() => dispatch({ type: 'add', by: -1 })}>
          −1
        </button>
        <button type="button" data-testid="inc" className="primary" onClick={() => dispatch({ type: 'add', by: 1 })}>
          +1
        </button>
        <button type="button" data-testid="burst" onClick={burst}>
          +1 ×10
        </button>
        <button type="button" data-testid="reset" onClick={() => dispatch({ type: 'reset' })}>
          Reset
        </button>
      </div>
      <div className="stream" aria-label="Stored stream">
        <div className="stream-head">
          <span>
            Stored stream of <code>{COUNTER_KEY}</code>: <strong data-testid="stream-size">{size}</strong> entr
            {size === 1 ? 'y' : 'ies'}
          </span>
          <span className="muted">
            compacted <strong data-testid="compactions">{stats?.compactions ?? 0}</strong>× · {state.actions} actions in
            all
          </span>
        </div>
        <div className="stream-bar" aria-hidden="true">
          {Array.from({ length: COMPACT_ABOVE + 1 }, (_, i) => (
            <span key={i} className={i < size ? (i === 0 && (stats?.compactions ?? 0) > 0 ? 'reset' : 'on') : ''} />
          ))}
        </div>
        <p className="muted small">
          Each click appends <code>{'{apply: action}'}</code>. Above {COMPACT_ABOVE} entries the client that sees the
          size compacts the stream to a single <code>{'{reset: state}'}</code> entry, so a newcomer replays a few
          entries, not the whole history. Watch the debug panel below.
        </p>
      </div>
    </div>
  )
}
