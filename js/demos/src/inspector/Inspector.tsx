import { useRoom } from 'driftdb-react'
import React, { useState } from 'react'
import { pretty, useDebugFeed, useRoomSnapshot, type Feed, type RoomSnapshot } from './feed'

function time(at: number): string {
  const d = new Date(at)
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

function Summary(props: { snapshot: RoomSnapshot | null; error: string | null }): React.ReactElement {
  const s = props.snapshot
  if (!s) return <p className="muted">{props.error ?? 'Loading the room…'}</p>
  const c = s.connections
  return (
    <dl className="inspect-summary" data-testid="inspect-summary">
      <dt>seq</dt>
      <dd data-testid="inspect-seq">{s.seq}</dd>
      <dt>epoch</dt>
      <dd className="mono">{s.epoch}</dd>
      <dt>stored</dt>
      <dd>{s.stored_bytes} bytes</dd>
      <dt>connections</dt>
      <dd data-testid="inspect-connections" data-websocket={c.websocket} data-webtransport={c.webtransport}>
        {c.total} ({c.websocket} WebSocket, {c.webtransport} WebTransport; {c.debug} debug, this page included)
      </dd>
    </dl>
  )
}

function Keys(props: { snapshot: RoomSnapshot | null; feed: Feed }): React.ReactElement {
  const keys = props.snapshot?.keys ?? []
  if (keys.length === 0) return <p className="muted">No keys yet.</p>
  return (
    <div className="debug-table-wrap">
      <table className="debug-table">
        <thead>
          <tr>
            <th>key</th>
            <th title="entries in the stored stream">entries</th>
            <th>bytes</th>
            <th title="seq of the newest stored entry">seq</th>
            <th title="connections subscribed">subscribers</th>
            <th>stored stream</th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr key={k.key} data-testid={`inspect-key-${k.key}`}>
              <td className="mono">{k.key}</td>
              <td>{k.entries}</td>
              <td>{k.bytes}</td>
              <td>{k.last_seq ?? ''}</td>
              <td>{k.subscribers}</td>
              <td>
                {(props.feed.streams.get(k.key) ?? []).map((e) => (
                  <pre key={e.seq} className="mono inspect-value">
                    #{e.seq} {pretty(e.value)}
                  </pre>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

function Flow(props: { feed: Feed }): React.ReactElement {
  return (
    <div className="debug-table-wrap">
      <table className="debug-table" data-testid="inspect-flow">
        <thead>
          <tr>
            <th>time</th>
            <th>type</th>
            <th>key</th>
            <th>seq</th>
            <th>value</th>
          </tr>
        </thead>
        <tbody>
          {props.feed.flow.map((m) => (
            <tr key={m.id} data-type={m.type} data-key={m.key}>
              <td className="mono">{time(m.at)}</td>
              <td>
                {m.type === 'push' ? 'relay' : m.type === 'init' ? 'stored' : m.type}
                {m.volatile ? ' (volatile)' : ''}
              </td>
              <td className="mono">{m.key}</td>
              <td>{m.seq ?? ''}</td>
              <td className="mono">{pretty(m.value, 0)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

/** Sends one message to the room over `POST /room/{id}/send` and shows the server's direct reply. */
function TestMessage(props: { httpUrl: string }): React.ReactElement {
  const [key, setKey] = useState('test')
  const [value, setValue] = useState('{"hello": "world"}')
  const [action, setAction] = useState('relay')
  const [reply, setReply] = useState('')
  const send = async () => {
    let parsed: unknown
    try {
      parsed = JSON.parse(value)
    } catch (error) {
      setReply(`not JSON: ${String(error)}`)
      return
    }
    const message = { type: 'push', key, value: parsed, action: { type: action } }
    try {
      const response = await fetch(props.httpUrl, { method: 'POST', body: JSON.stringify(message) })
      setReply(`${response.status} ${await response.text()}`)
    } catch (error) {
      setReply(String(error))
    }
  }
  return (
    <form
      className="inspect-send"
      onSubmit={(e) => {
        e.preventDefault()
        void send()
      }}
    >
      <input aria-label="key" data-testid="inspect-send-key" value={key} onChange={(e) => setKey(e.target.value)} />
      <select
        aria-label="action"
        data-testid="inspect-send-action"
        value={action}
        onChange={(e) => setAction(e.target.value)}
      >
        <option value="relay">relay</option>
        <option value="append">append</option>
        <option value="replace">replace</option>
      </select>
      <textarea
        aria-label="value (JSON)"
        data-testid="inspect-send-value"
        value={value}
        onChange={(e) => setValue(e.target.value)}
        rows={2}
      />
      <button type="submit" data-testid="inspect-send">
        Send
      </button>
      <span className="muted mono" data-testid="inspect-send-reply">
        {reply}
      </span>
    </form>
  )
}

/**
 * The room inspector (`/inspect?room=ID`): the room's keys with their stored streams, its seq, epoch and
 * connections by transport, the live flow of stored changes and relays, and a form to send a test message.
 */
export function Inspector(): React.ReactElement {
  const room = useRoom()
  const { snapshot, error } = useRoomSnapshot(room)
  const feed = useDebugFeed(room)
  return (
    <div data-testid="page-inspect">
      <div className="page-title">
        <h1>
          Room inspector <span className="mono muted">{room?.room ?? ''}</span>
        </h1>
        <p className="muted">
          Live from a read-only <code>?debug=true</code> connection {feed.connected ? '(connected)' : '(connecting…)'}{' '}
          and <code>GET /room/ID/inspect</code>.
        </p>
      </div>
      <section className="card">
        <Summary snapshot={snapshot} error={error} />
      </section>
      <section className="card">
        <h2>Keys</h2>
        <Keys snapshot={snapshot} feed={feed} />
      </section>
      <section className="card">
        <h2>Send a test message</h2>
        {room ? <TestMessage httpUrl={room.http_url} /> : null}
      </section>
      <section className="card">
        <h2>Live flow</h2>
        <Flow feed={feed} />
      </section>
    </div>
  )
}
