import { basicSetup } from 'codemirror'
import { EditorState } from '@codemirror/state'
import { EditorView } from '@codemirror/view'
import { useDatabase, useRoom } from 'driftdb-react'
import React, { useEffect, useRef, useState } from 'react'
import { yCollab } from 'y-codemirror.next'
import { DriftDBProvider as YDriftDBProvider } from 'y-driftdb'
import * as Y from 'yjs'
import { readConfig } from '../config'
import { useIdentity } from '../identity'

export const TEXT_KEY = 'text'

interface Peer {
  clientId: number
  name: string
  color: string
}

/** The peers' awareness states (name and colour), kept in React state for the list under the editor. */
function peersOf(provider: YDriftDBProvider): Peer[] {
  const out: Peer[] = []
  for (const [clientId, state] of provider.awareness.getStates()) {
    const user = (state as { user?: { name?: unknown; color?: unknown } }).user
    if (clientId === provider.doc.clientID || typeof user?.name !== 'string') continue
    out.push({ clientId, name: user.name, color: typeof user.color === 'string' ? user.color : '#999' })
  }
  return out
}

export function CollabTextDemo(): React.ReactElement {
  const db = useDatabase()
  const room = useRoom()
  const me = useIdentity()
  const host = useRef<HTMLDivElement | null>(null)
  const [provider, setProvider] = useState<YDriftDBProvider | null>(null)
  const [synced, setSynced] = useState(false)
  const [peers, setPeers] = useState<Peer[]>([])
  const [offline, setOffline] = useState(false)

  // One doc, provider and editor per mount: yCollab binds the editor to the Y.Text and the awareness.
  useEffect(() => {
    const doc = new Y.Doc()
    const p = new YDriftDBProvider({ db, doc, key: TEXT_KEY })
    const ytext = doc.getText('codemirror')
    const view = new EditorView({
      state: EditorState.create({
        doc: ytext.toString(),
        extensions: [basicSetup, EditorView.lineWrapping, yCollab(ytext, p.awareness)],
      }),
      parent: host.current!,
    })
    const onSynced = (s: boolean) => setSynced(s)
    const onAwareness = () => setPeers(peersOf(p))
    p.on('synced', onSynced)
    p.awareness.on('change', onAwareness)
    setSynced(p.synced)
    setProvider(p)
    return () => {
      p.off('synced', onSynced)
      p.awareness.off('change', onAwareness)
      view.destroy()
      p.destroy()
      doc.destroy()
    }
  }, [db])

  // Name and colour, as the remote cursors show them.
  useEffect(() => {
    provider?.awareness.setLocalStateField('user', { name: me.name, color: me.color, colorLight: `${me.color}33` })
  }, [provider, me.name, me.color])

  // "Work offline" closes the page's connection for real; edits made meanwhile merge when it comes back.
  const toggleOffline = () => {
    if (!offline) {
      db.close()
      setOffline(true)
    } else if (room) {
      void db.connect({ room, transport: readConfig().transport })
      setOffline(false)
    }
  }

  return (
    <div className="card demo collab-text">
      <div className="cursor-stats">
        <span data-testid="text-synced" data-synced={synced ? 'true' : 'false'}>
          {synced ? 'In sync with the room' : offline ? 'Offline: edits wait for the connection' : 'Syncing…'}
        </span>
        <label className="toggle">
          <input type="checkbox" data-testid="text-offline" checked={offline} onChange={toggleOffline} /> Work offline
        </label>
      </div>
      <div className="editor" data-testid="editor" ref={host} />
      <div className="presence-list" data-testid="text-peers" data-count={peers.length}>
        <span className="chip" style={{ borderColor: me.color }}>
          <span className="swatch" style={{ background: me.color }} /> {me.name} (you)
        </span>
        {peers.map((p) => (
          <span className="chip" key={p.clientId} data-testid="text-peer" style={{ borderColor: p.color }}>
            <span className="swatch" style={{ background: p.color }} /> {p.name}
          </span>
        ))}
      </div>
      <p className="muted small">
        A Yjs document synced by <code>y-driftdb</code>: each edit is appended to <code>{TEXT_KEY}</code> and the stream
        is compacted into one snapshot as it grows. Cursors and selections travel as volatile relays (Yjs awareness).
        CodeMirror 6 with <code>y-codemirror.next</code>.
      </p>
    </div>
  )
}
