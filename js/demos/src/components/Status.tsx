import { useConnectionStatus, useLatency } from 'driftdb-react'
import React from 'react'

const TRANSPORT_NAMES = { webtransport: 'WebTransport', websocket: 'WebSocket' } as const

/** Connection status, the transport in use and the round-trip latency. */
export function Status(): React.ReactElement {
  const status = useConnectionStatus()
  const latency = useLatency(2_000)
  const transport = status.connected ? TRANSPORT_NAMES[status.transport] : null
  return (
    <div
      className={`status ${status.connected ? 'status-up' : 'status-down'}`}
      data-testid="status"
      data-connected={status.connected ? 'true' : 'false'}
      data-transport={status.connected ? status.transport : ''}
      title={status.connected ? `Connected to DriftDB over ${transport}` : 'Not connected: retrying'}
    >
      <span className="status-dot" aria-hidden="true" />
      {status.connected ? (
        <>
          <span className="status-transport" data-testid="transport">
            {transport}
          </span>
          <span className="status-latency" data-testid="latency">
            {latency === null ? '… ms' : `${latency < 10 ? latency.toFixed(1) : Math.round(latency)} ms`}
          </span>
        </>
      ) : (
        <span>Connecting…</span>
      )}
    </div>
  )
}
