import type { WebRtcMessage } from 'driftdb'
import { usePresence, useWebRtc } from 'driftdb-react'
import React, { useCallback, useEffect, useRef, useState } from 'react'
import { useIdentity } from '../identity'

const RTC_KEY = 'rtc-chat'
const NAMES_KEY = 'rtc-chat/names'
/** A "typing…" hint lasts this long after the last keystroke heard. */
const TYPING_MS = 1_500

/** A chat line over the reliable channel. */
interface ChatLine {
  text: string
  name: string
  color: string
}

interface LoggedLine extends ChatLine {
  n: number
  mine: boolean
}

function parseLine(message: WebRtcMessage): ChatLine | null {
  if (typeof message.data !== 'string') return null
  try {
    const v = JSON.parse(message.data) as Partial<ChatLine>
    return typeof v.text === 'string' && typeof v.name === 'string' && typeof v.color === 'string'
      ? { text: v.text, name: v.name, color: v.color }
      : null
  } catch {
    return null
  }
}

const STATE_CLASS: Record<string, string> = { connected: 'rtc-ok', connecting: 'rtc-wait', new: 'rtc-wait' }

export function WebRtcChatDemo(): React.ReactElement {
  const me = useIdentity()
  const names = usePresence(NAMES_KEY, { name: me.name, color: me.color })
  const [log, setLog] = useState<LoggedLine[]>([])
  const [typing, setTyping] = useState<Record<string, number>>({})
  const counter = useRef(0)

  const onMessage = useCallback((m: WebRtcMessage) => {
    if (m.channel === 'unreliable') {
      setTyping((t) => ({ ...t, [m.from]: Date.now() }))
      return
    }
    const line = parseLine(m)
    if (!line) return
    setTyping((t) => ({ ...t, [m.from]: 0 }))
    setLog((l) => [...l.slice(-49), { ...line, n: ++counter.current, mine: false }])
  }, [])
  const rtc = useWebRtc({ key: RTC_KEY, onMessage })

  // Re-render now and then so that "typing…" hints expire.
  const [, setTick] = useState(0)
  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), 500)
    return () => clearInterval(timer)
  }, [])

  const [draft, setDraft] = useState('')
  const submit = (e: React.FormEvent) => {
    e.preventDefault()
    const text = draft.trim()
    if (text === '') return
    const line: ChatLine = { text, name: me.name, color: me.color }
    rtc.broadcast('reliable', JSON.stringify(line))
    setLog((l) => [...l.slice(-49), { ...line, n: ++counter.current, mine: true }])
    setDraft('')
  }

  const peerIds = Object.keys(rtc.peers).sort()
  const open = peerIds.filter((id) => rtc.peers[id]?.channels.reliable === 'open').length
  return (
    <div className="card demo rtc-chat">
      <div className="rtc-peers" data-testid="rtc-peers" data-open={open}>
        {peerIds.length === 0 ? (
          <span className="muted">Nobody else here yet: open the share link in another tab or device.</span>
        ) : null}
        {peerIds.map((id) => {
          const p = rtc.peers[id]!
          const who = names[id]?.value
          return (
            <span
              key={id}
              className={`chip rtc-peer ${STATE_CLASS[p.state] ?? 'rtc-bad'}`}
              data-testid="rtc-peer"
              data-name={who?.name ?? ''}
              data-state={p.state}
              data-reliable={p.channels.reliable ?? ''}
              data-unreliable={p.channels.unreliable ?? ''}
              title={`ICE restarts: ${p.iceRestarts}`}
            >
              <span className="swatch" style={{ background: who?.color ?? '#999' }} />
              {who?.name ?? id.slice(0, 6)} · <strong>{p.state}</strong>
              {Date.now() - (typing[id] ?? 0) < TYPING_MS ? <em className="muted"> typing…</em> : null}
            </span>
          )
        })}
      </div>
      <ol className="chat-log" data-testid="chat-log">
        {log.length === 0 ? <li className="muted">No messages yet.</li> : null}
        {log.map((l) => (
          <li key={l.n} data-testid="chat-line" data-name={l.name} className={l.mine ? 'chat-mine' : ''}>
            <strong style={{ color: l.color }}>{l.name}</strong> {l.text}
          </li>
        ))}
      </ol>
      <form className="chat-form" onSubmit={submit}>
        <input
          data-testid="chat-input"
          value={draft}
          maxLength={500}
          placeholder={open === 0 ? 'Waiting for a peer…' : 'Message'}
          aria-label="Message"
          onChange={(e) => {
            setDraft(e.currentTarget.value)
            rtc.broadcast('unreliable', 'typing')
          }}
        />
        <button type="submit" className="primary" data-testid="chat-send" disabled={open === 0}>
          Send
        </button>
      </form>
      <p className="muted small">
        DriftDB carries only the signaling: presence on <code>{RTC_KEY}/presence</code> and offers, answers and ICE
        candidates as relays addressed to each peer (<code>{RTC_KEY}/to/ID</code>). Messages go peer to peer over a
        reliable data channel; the &ldquo;typing…&rdquo; hint over an unordered one that never retransmits. No STUN
        server: host candidates only, so peers on one machine or network connect.
      </p>
    </div>
  )
}
