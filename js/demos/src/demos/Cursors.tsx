import { useDatabase, usePresence } from 'driftdb-react'
import React, { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { useIdentity } from '../identity'
import { ThrottledSender, approach, useFrameLoop, useRelayListener } from '../volatile'

const CURSOR_KEY = 'cursors'
const PRESENCE_KEY = 'cursors/presence'

/** One cursor position, in arena coordinates (0..1 on both axes). */
interface CursorMessage {
  c: string
  name: string
  color: string
  x: number
  y: number
  /** False when the pointer left the arena. */
  on: boolean
}

interface RemoteCursor {
  id: string
  name: string
  color: string
  /** Last received position (the target) and the shown one, which eases towards it. */
  tx: number
  ty: number
  x: number
  y: number
  on: boolean
  heard: number
  el: HTMLDivElement | null
}

export function CursorsDemo(): React.ReactElement {
  const db = useDatabase()
  const me = useIdentity()
  const peers = usePresence(PRESENCE_KEY, { name: me.name, color: me.color })
  const peerIds = Object.keys(peers).sort()
  const alone = peerIds.length === 0
  const aloneRef = useRef(alone)
  aloneRef.current = alone

  const sender = useMemo(() => new ThrottledSender<CursorMessage>(db, CURSOR_KEY, () => !aloneRef.current, 60), [db])
  useEffect(() => () => sender.stop(), [sender])
  // Someone joined: show them where this pointer is.
  const peerList = peerIds.join(',')
  useEffect(() => {
    if (peerList !== '') sender.resend()
  }, [peerList, sender])

  const remotes = useRef(new Map<string, RemoteCursor>())
  const [cursorIds, setCursorIds] = useState<Array<{ id: string; name: string; color: string }>>([])
  const received = useRef(0)

  useRelayListener<CursorMessage>(CURSOR_KEY, (m) => {
    if (!m || typeof m !== 'object' || m.c === me.id || typeof m.x !== 'number' || typeof m.y !== 'number') return
    received.current++
    let r = remotes.current.get(m.c)
    if (!r) {
      r = { id: m.c, name: m.name, color: m.color, tx: m.x, ty: m.y, x: m.x, y: m.y, on: m.on, heard: 0, el: null }
      remotes.current.set(m.c, r)
    }
    if (!r.on && m.on) {
      // Reappearing: jump there rather than glide from where it left.
      r.x = m.x
      r.y = m.y
    }
    r.tx = m.x
    r.ty = m.y
    r.on = m.on
    r.heard = Date.now()
    if (r.el) {
      r.el.dataset.tx = m.x.toFixed(4)
      r.el.dataset.ty = m.y.toFixed(4)
      r.el.dataset.on = String(m.on)
    }
    if (r.name !== m.name || r.color !== m.color || !cursorIds.some((c) => c.id === m.c)) {
      r.name = m.name
      r.color = m.color
      setCursorIds([...remotes.current.values()].map(({ id, name, color }) => ({ id, name, color })))
    }
  })

  // Drops the cursors of peers that left (gone from presence, and silent for a while).
  const presentRef = useRef(new Set<string>())
  presentRef.current = new Set(peerIds)
  useEffect(() => {
    const sweep = () => {
      let changed = false
      for (const [id, r] of remotes.current) {
        if (!presentRef.current.has(id) && Date.now() - r.heard > 3_000) {
          remotes.current.delete(id)
          changed = true
        }
      }
      if (changed) setCursorIds([...remotes.current.values()].map(({ id, name, color }) => ({ id, name, color })))
    }
    const timer = setInterval(sweep, 1_000)
    return () => clearInterval(timer)
  }, [])

  const arena = useRef<HTMLDivElement | null>(null)

  // Interpolation: every frame each shown cursor eases towards its last received position.
  useFrameLoop((dt) => {
    const el = arena.current
    if (el) {
      const w = el.clientWidth
      const h = el.clientHeight
      for (const r of remotes.current.values()) {
        r.x = approach(r.x, r.tx, dt)
        r.y = approach(r.y, r.ty, dt)
        if (r.el) {
          r.el.style.transform = `translate(${(r.x * w).toFixed(1)}px, ${(r.y * h).toFixed(1)}px)`
          r.el.style.opacity = r.on ? '1' : '0'
        }
      }
    }
  })

  const position = useCallback(
    (e: React.PointerEvent<HTMLDivElement>, on: boolean): CursorMessage => {
      const rect = e.currentTarget.getBoundingClientRect()
      const x = Math.min(1, Math.max(0, (e.clientX - rect.left) / rect.width))
      const y = Math.min(1, Math.max(0, (e.clientY - rect.top) / rect.height))
      return { c: me.id, name: me.name, color: me.color, x, y, on }
    },
    [me.id, me.name, me.color],
  )

  // Message counters, refreshed twice a second.
  const [counts, setCounts] = useState({ sent: 0, received: 0, rate: 0 })
  useEffect(() => {
    let previous = 0
    let at = performance.now()
    const timer = setInterval(() => {
      const now = performance.now()
      const rate = ((received.current - previous) * 1000) / (now - at)
      previous = received.current
      at = now
      setCounts({ sent: sender.sent, received: received.current, rate })
    }, 500)
    return () => clearInterval(timer)
  }, [sender])

  return (
    <div className="card demo cursors">
      <div className="cursor-stats">
        <span data-testid="cursor-peers" data-count={peerIds.length}>
          {alone
            ? 'Nobody else here: nothing is sent'
            : `${peerIds.length} other${peerIds.length === 1 ? '' : 's'} here`}
        </span>
        <span className="muted">
          sent <strong data-testid="cursor-sent">{counts.sent}</strong> · received{' '}
          <strong data-testid="cursor-received">{counts.received}</strong> ({Math.round(counts.rate)}/s)
        </span>
      </div>
      <div
        ref={arena}
        className="arena cursor-arena"
        data-testid="cursor-arena"
        onPointerMove={(e) => sender.update(position(e, true))}
        onPointerEnter={(e) => sender.update(position(e, true))}
        onPointerLeave={(e) => sender.update(position(e, false))}
      >
        {cursorIds.length === 0 ? (
          <div className="arena-hint muted">
            {alone ? 'Open the share link in another tab, then move your pointer here' : 'Move your pointer here'}
          </div>
        ) : null}
        {cursorIds.map((c) => (
          <div
            key={c.id}
            className="remote-cursor"
            data-testid="remote-cursor"
            data-name={c.name}
            ref={(el) => {
              const r = remotes.current.get(c.id)
              if (!r) return
              r.el = el
              if (el) {
                el.dataset.tx = r.tx.toFixed(4)
                el.dataset.ty = r.ty.toFixed(4)
                el.dataset.on = String(r.on)
              }
            }}
          >
            <svg width="18" height="22" viewBox="0 0 18 22" aria-hidden="true">
              <path d="M1 1 L1 18 L5.5 13.8 L8.6 21 L11.6 19.7 L8.6 12.6 L15 12.6 Z" fill={c.color} stroke="white" />
            </svg>
            <span className="cursor-label" style={{ background: c.color }}>
              {c.name}
            </span>
          </div>
        ))}
      </div>
      <div className="presence-list">
        <span className="chip" style={{ borderColor: me.color }}>
          <span className="swatch" style={{ background: me.color }} /> {me.name} (you)
        </span>
        {peerIds.map((id) => {
          const p = peers[id]?.value
          return (
            <span className="chip" key={id} style={{ borderColor: p?.color }}>
              <span className="swatch" style={{ background: p?.color }} /> {p?.name ?? id.slice(0, 6)}
            </span>
          )
        })}
      </div>
    </div>
  )
}
