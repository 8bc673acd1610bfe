import { useConnectionStatus } from 'driftdb-react'
import React, { useState } from 'react'
import { useDebugSnapshot } from '../debug'

function time(at: number): string {
  const d = new Date(at)
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

/** Keys of the room with their stored-stream sizes, and the last messages this page received. */
export function DebugPanel(): React.ReactElement {
  const [open, setOpen] = useState(true)
  const snap = useDebugSnapshot(open ? 250 : 2_000)
  const status = useConnectionStatus()
  return (
    <details className="card debug" open={open} onToggle={(e) => setOpen(e.currentTarget.open)} data-testid="debug">
      <summary>
        Debug{' '}
        <span className="muted">
          · {snap.keys.length} key{snap.keys.length === 1 ? '' : 's'} · {snap.received} messages received
        </span>
        {status.connected && status.debugUrl ? (
          <>
            {' '}
            ·{' '}
            <a href={status.debugUrl} target="_blank" rel="noreferrer" data-testid="debug-inspector-link">
              room inspector
            </a>
          </>
        ) : null}
      </summary>
      <div className="debug-grid">
        <div>
          <h3>
            Keys <span className="muted">{snap.watching ? '(live, from a ?debug=true socket)' : '(connecting…)'}</span>
          </h3>
          <div className="debug-table-wrap">
            <table className="debug-table">
              <thead>
                <tr>
                  <th>key</th>
                  <th title="entries in the stored stream">stream</th>
                  <th title="highest seq seen">seq</th>
                  <th title="compactions seen since this page opened">compactions</th>
                  <th title="relays (not stored)">relays</th>
                </tr>
              </thead>
              <tbody>
                {snap.keys.length === 0 ? (
                  <tr>
                    <td colSpan={5} className="muted">
                      no keys yet
                    </td>
                  </tr>
                ) : (
                  snap.keys.map((k) => (
                    <tr
                      key={k.key}
                      data-testid={`debug-key-${k.key}`}
                      data-size={k.size}
                      data-compactions={k.compactions}
                    >
                      <td className="mono">{k.key}</td>
                      <td>{k.size}</td>
                      <td>{k.lastSeq}</td>
                      <td>{k.compactions}</td>
                      <td>{k.relays}</td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
        </div>
        <div>
          <h3>
            Last messages received{' '}
            <span className="muted">
              (
              {Object.entries(snap.receivedByType)
                .map(([t, n]) => `${t} ${n}`)
                .join(' · ') || 'none'}
              )
            </span>
          </h3>
          <ol className="debug-log">
            {snap.messages.map((m) => (
              <li key={m.id}>
                <span className="muted mono">{time(m.at)}</span> <span className={`tag tag-${m.type}`}>{m.type}</span>
                {m.volatile ? <span className="tag tag-volatile">volatile</span> : null}{' '}
                <span className="mono">{m.key}</span>
                {m.seq !== null ? <span className="muted"> #{m.seq}</span> : null}{' '}
                <span className="mono summary">{m.summary}</span>
              </li>
            ))}
          </ol>
        </div>
      </div>
    </details>
  )
}
