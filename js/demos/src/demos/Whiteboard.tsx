import { useDatabase, useSharedReducer, useUniqueClientId } from 'driftdb-react'
import React, { useEffect, useMemo, useRef, useState } from 'react'
import { useKeyStats } from '../debug'
import { useIdentity } from '../identity'
import { useRelayListener } from '../volatile'
import {
  WHITEBOARD_COLORS,
  boardReducer,
  liveRelay,
  mergeLive,
  pointsToPath,
  type BoardAction,
  type BoardState,
  type LiveStroke,
  type Stroke,
} from './whiteboard-logic'

export const BOARD_KEY = 'whiteboard'
const LIVE_KEY = 'whiteboard/live'
/** driftdb-react's reducer compacts above this many stored entries. */
export const COMPACT_ABOVE = 30
/** In-progress strokes go out at most this often (ms), as volatile relays. */
const LIVE_INTERVAL_MS = 33
/** A live stroke nobody finished (its author left mid-stroke) fades after this long. */
const LIVE_EXPIRY_MS = 3_000

function newStrokeId(): string {
  return Math.random().toString(36).slice(2, 10)
}

/** Board coordinates (0..1000 on both axes) of a pointer event over the SVG. */
function boardPoint(e: React.PointerEvent<SVGSVGElement>): [number, number] {
  const rect = e.currentTarget.getBoundingClientRect()
  const x = Math.round(Math.min(1, Math.max(0, (e.clientX - rect.left) / rect.width)) * 1000)
  const y = Math.round(Math.min(1, Math.max(0, (e.clientY - rect.top) / rect.height)) * 1000)
  return [x, y]
}

/** Strokes of others being drawn right now, from the volatile relays; dropped once stored or stale. */
function useLiveStrokes(me: string, stored: Stroke[]): LiveStroke[] {
  const [live, setLive] = useState<Record<string, LiveStroke & { heard: number }>>({})
  useRelayListener<LiveStroke>(LIVE_KEY, (m) => {
    if (!m || typeof m !== 'object' || m.c === me || !Array.isArray(m.points) || typeof m.from !== 'number') return
    setLive((l) => ({ ...l, [m.c]: { ...mergeLive(l[m.c], m), heard: Date.now() } }))
  })
  useEffect(() => {
    const timer = setInterval(() => {
      setLive((l) => {
        const fresh = Object.entries(l).filter(([, s]) => Date.now() - s.heard < LIVE_EXPIRY_MS)
        return fresh.length === Object.keys(l).length ? l : Object.fromEntries(fresh)
      })
    }, 1_000)
    return () => clearInterval(timer)
  }, [])
  const storedIds = useMemo(() => new Set(stored.map((s) => s.id)), [stored])
  return Object.values(live).filter((s) => !storedIds.has(s.id))
}

export function WhiteboardDemo(): React.ReactElement {
  const db = useDatabase()
  const clientId = useUniqueClientId()
  const me = useIdentity()
  const [board, dispatch] = useSharedReducer<BoardState, BoardAction>(BOARD_KEY, boardReducer, { strokes: [] })
  const stats = useKeyStats(BOARD_KEY)
  const [color, setColor] = useState<string>(WHITEBOARD_COLORS[0])
  const [drawing, setDrawing] = useState<Stroke | null>(null)
  const current = useRef<Stroke | null>(null)
  const lastLiveSent = useRef(0)
  const live = useLiveStrokes(clientId, board.strokes)

  const trailing = useRef<ReturnType<typeof setTimeout> | null>(null)
  useEffect(
    () => () => {
      if (trailing.current !== null) clearTimeout(trailing.current)
    },
    [],
  )

  /** Relays the stroke being drawn, at most every LIVE_INTERVAL_MS; a trailing send carries the latest points. */
  const sendLive = (stroke: Stroke, force: boolean) => {
    const wait = lastLiveSent.current + LIVE_INTERVAL_MS - performance.now()
    if (!force && wait > 0) {
      trailing.current ??= setTimeout(() => {
        trailing.current = null
        if (current.current) sendLive(current.current, true)
      }, wait)
      return
    }
    lastLiveSent.current = performance.now()
    const value: LiveStroke = liveRelay(stroke, clientId)
    db.send({ type: 'push', action: { type: 'relay' }, key: LIVE_KEY, value, volatile: true })
  }

  const onDown = (e: React.PointerEvent<SVGSVGElement>) => {
    e.currentTarget.setPointerCapture(e.pointerId)
    const stroke: Stroke = { id: newStrokeId(), color, width: 4, by: me.name, points: boardPoint(e) }
    current.current = stroke
    setDrawing(stroke)
    sendLive(stroke, true)
  }
  const onMove = (e: React.PointerEvent<SVGSVGElement>) => {
    const stroke = current.current
    if (!stroke) return
    const next = { ...stroke, points: [...stroke.points, ...boardPoint(e)] }
    current.current = next
    setDrawing(next)
    sendLive(next, false)
  }
  const onUp = () => {
    const stroke = current.current
    current.current = null
    setDrawing(null)
    // Stored: every page, a late joiner and a reload see it. The live copy goes away when it arrives.
    if (stroke) dispatch({ type: 'stroke', stroke })
  }

  const size = stats?.size ?? 0
  return (
    <div className="card demo whiteboard">
      <div className="wb-toolbar">
        <div className="wb-colors" role="radiogroup" aria-label="Colour">
          {WHITEBOARD_COLORS.map((c, i) => (
            <button
              key={c}
              type="button"
              role="radio"
              aria-checked={c === color}
              aria-label={`Colour ${i + 1}`}
              data-testid={`wb-color-${i}`}
              className={`swatch swatch-button ${c === color ? 'wb-color-on' : ''}`}
              style={{ background: c }}
              onClick={() => setColor(c)}
            />
          ))}
        </div>
        <span className="muted small">
          <strong data-testid="wb-count">{board.strokes.length}</strong> strokes ·{' '}
          <span data-testid="wb-live-count">{live.length}</span> being drawn
        </span>
        <button type="button" data-testid="wb-clear" onClick={() => dispatch({ type: 'clear' })}>
          Clear
        </button>
      </div>
      <svg
        className="arena wb-canvas"
        data-testid="wb-canvas"
        viewBox="0 0 1000 1000"
        preserveAspectRatio="none"
        onPointerDown={onDown}
        onPointerMove={onMove}
        onPointerUp={onUp}
        onPointerCancel={onUp}
      >
        {board.strokes.map((s) => (
          <path key={s.id} data-testid="stroke" data-id={s.id} d={pointsToPath(s.points)} stroke={s.color} />
        ))}
        {live.map((s) => (
          <path
            key={`live-${s.c}`}
            data-testid="live-stroke"
            data-id={s.id}
            className="wb-live"
            d={pointsToPath(s.points)}
            stroke={s.color}
          />
        ))}
        {drawing ? <path className="wb-mine" d={pointsToPath(drawing.points)} stroke={drawing.color} /> : null}
      </svg>
      <div className="stream" aria-label="Stored stream">
        <div className="stream-head">
          <span>
            Stored stream of <code>{BOARD_KEY}</code>: <strong data-testid="stream-size">{size}</strong> entr
            {size === 1 ? 'y' : 'ies'}
          </span>
          <span className="muted">
            compacted <strong data-testid="compactions">{stats?.compactions ?? 0}</strong>×
          </span>
        </div>
        <p className="muted small">
          A stroke being drawn goes out as volatile relays (datagrams over WebTransport), so others watch the line grow;
          the finished stroke is appended to <code>{BOARD_KEY}</code>, which a late joiner or a reload replays. Above{' '}
          {COMPACT_ABOVE} entries the stream is compacted to one <code>{'{reset: board}'}</code> entry.
        </p>
      </div>
    </div>
  )
}
