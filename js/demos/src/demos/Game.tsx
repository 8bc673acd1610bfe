import { useDatabase, usePresence, useSharedReducer } from 'driftdb-react'
import React, { useEffect, useMemo, useRef, useState } from 'react'
import { useIdentity } from '../identity'
import { ThrottledSender, approach, useFrameLoop, useRelayListener } from '../volatile'
import { COIN_RADIUS, DOT_RADIUS, SPEED, TARGET_SCORE, gameReducer, initialGame } from './game-logic'

const GAME_KEY = 'game'
const MOVES_KEY = 'game/moves'
const PRESENCE_KEY = 'game/presence'

/** A player's dot, sent as a volatile relay about 30 times a second while it moves. */
interface MoveMessage {
  c: string
  name: string
  color: string
  x: number
  y: number
}

interface RemoteDot {
  id: string
  tx: number
  ty: number
  x: number
  y: number
  el: HTMLDivElement | null
}

const KEYS: Record<string, [number, number]> = {
  ArrowLeft: [-1, 0],
  ArrowRight: [1, 0],
  ArrowUp: [0, -1],
  ArrowDown: [0, 1],
  a: [-1, 0],
  d: [1, 0],
  w: [0, -1],
  s: [0, 1],
}

export function GameDemo(): React.ReactElement {
  const db = useDatabase()
  const me = useIdentity()
  const [state, dispatch] = useSharedReducer(GAME_KEY, gameReducer, 1, initialGame)
  const peers = usePresence(PRESENCE_KEY, { name: me.name, color: me.color })
  const peerIds = Object.keys(peers).sort()
  const peerList = peerIds.join(',')
  const aloneRef = useRef(true)
  aloneRef.current = peerIds.length === 0

  // On the scoreboard from the start (and again under a new name or colour, once the typing stops).
  const joined = useRef(false)
  useEffect(() => {
    const join = () => dispatch({ type: 'join', player: me.id, name: me.name, color: me.color })
    if (!joined.current) {
      joined.current = true
      join()
      return
    }
    const timer = setTimeout(join, 600)
    return () => clearTimeout(timer)
  }, [dispatch, me.id, me.name, me.color])

  const sender = useMemo(() => new ThrottledSender<MoveMessage>(db, MOVES_KEY, () => !aloneRef.current, 30), [db])
  useEffect(() => () => sender.stop(), [sender])
  useEffect(() => {
    if (peerList !== '') sender.resend()
  }, [peerList, sender])

  const stateRef = useRef(state)
  stateRef.current = state
  const meRef = useRef(me)
  meRef.current = me

  // This player's dot: simulated here, and authoritative here.
  const dot = useRef({ x: 0.2 + 0.6 * Math.random(), y: 0.2 + 0.6 * Math.random() })
  const pointer = useRef<{ x: number; y: number } | null>(null)
  const keys = useRef(new Set<string>())
  const claimed = useRef(-1)
  const arena = useRef<HTMLDivElement | null>(null)
  const myDot = useRef<HTMLDivElement | null>(null)
  const remotes = useRef(new Map<string, RemoteDot>())
  const [dotList, setDotList] = useState<Array<{ id: string; name: string; color: string }>>([])

  useRelayListener<MoveMessage>(MOVES_KEY, (m) => {
    if (!m || typeof m !== 'object' || m.c === me.id || typeof m.x !== 'number' || typeof m.y !== 'number') return
    let r = remotes.current.get(m.c)
    if (!r) {
      r = { id: m.c, tx: m.x, ty: m.y, x: m.x, y: m.y, el: null }
      remotes.current.set(m.c, r)
    }
    r.tx = m.x
    r.ty = m.y
    const known = dotList.find((d) => d.id === m.c)
    if (!known || known.name !== m.name || known.color !== m.color) {
      setDotList((list) => [...list.filter((d) => d.id !== m.c), { id: m.c, name: m.name, color: m.color }])
    }
  })

  // Players who left take their dot with them.
  useEffect(() => {
    const present = new Set(peerList.split(','))
    for (const id of remotes.current.keys()) if (!present.has(id)) remotes.current.delete(id)
    setDotList((list) => list.filter((d) => present.has(d.id)))
  }, [peerList])

  useEffect(() => {
    const typing = (e: KeyboardEvent) => e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement
    const down = (e: KeyboardEvent) => {
      if (typing(e) || !(e.key in KEYS)) return
      e.preventDefault()
      keys.current.add(e.key)
      pointer.current = null
    }
    const up = (e: KeyboardEvent) => keys.current.delete(e.key)
    const blur = () => keys.current.clear()
    window.addEventListener('keydown', down)
    window.addEventListener('keyup', up)
    window.addEventListener('blur', blur)
    return () => {
      window.removeEventListener('keydown', down)
      window.removeEventListener('keyup', up)
      window.removeEventListener('blur', blur)
    }
  }, [])

  // The game loop: move this dot, ease the others towards their last reported position, claim the coin.
  useFrameLoop((dt) => {
    const d = dot.current
    let vx = 0
    let vy = 0
    for (const k of keys.current) {
      const v = KEYS[k]
      if (v) {
        vx += v[0]
        vy += v[1]
      }
    }
    if (vx === 0 && vy === 0 && pointer.current) {
      vx = pointer.current.x - d.x
      vy = pointer.current.y - d.y
    }
    const length = Math.hypot(vx, vy)
    if (length > 0.004) {
      const step = Math.min(length, (SPEED * dt) / 1000)
      d.x = Math.min(1 - DOT_RADIUS, Math.max(DOT_RADIUS, d.x + (vx / length) * step))
      d.y = Math.min(1 - DOT_RADIUS, Math.max(DOT_RADIUS, d.y + (vy / length) * step))
      const m = meRef.current
      sender.update({ c: m.id, name: m.name, color: m.color, x: d.x, y: d.y })
    }
    const s = stateRef.current
    if (
      s.winner === null &&
      claimed.current !== s.coin.n &&
      Math.hypot(s.coin.x - d.x, s.coin.y - d.y) < DOT_RADIUS + COIN_RADIUS
    ) {
      claimed.current = s.coin.n
      const m = meRef.current
      dispatch({ type: 'collect', n: s.coin.n, player: m.id, name: m.name, color: m.color })
    }
    const el = arena.current
    if (el) {
      const w = el.clientWidth
      const h = el.clientHeight
      if (myDot.current) {
        myDot.current.style.transform = `translate(${(d.x * w).toFixed(1)}px, ${(d.y * h).toFixed(1)}px)`
        myDot.current.dataset.x = d.x.toFixed(4)
        myDot.current.dataset.y = d.y.toFixed(4)
      }
      for (const r of remotes.current.values()) {
        r.x = approach(r.x, r.tx, dt, 60)
        r.y = approach(r.y, r.ty, dt, 60)
        if (r.el) r.el.style.transform = `translate(${(r.x * w).toFixed(1)}px, ${(r.y * h).toFixed(1)}px)`
      }
    }
  })

  const steer = (e: React.PointerEvent<HTMLDivElement>) => {
    const rect = e.currentTarget.getBoundingClientRect()
    pointer.current = { x: (e.clientX - rect.left) / rect.width, y: (e.clientY - rect.top) / rect.height }
  }

  const board = Object.entries(state.scores).sort(([, a], [, b]) => b.score - a.score || a.name.localeCompare(b.name))
  const size = `${(COIN_RADIUS * 200).toFixed(2)}%`
  const dotSize = `${(DOT_RADIUS * 200).toFixed(2)}%`

  return (
    <div className="card demo game">
      <div className="game-layout">
        <div
          ref={arena}
          className="arena game-arena"
          data-testid="game-arena"
          onPointerMove={steer}
          onPointerDown={steer}
          style={{ ['--dot' as string]: dotSize }}
        >
          {state.winner === null ? (
            <div
              className="coin"
              data-testid="coin"
              data-n={state.coin.n}
              data-x={state.coin.x.toFixed(4)}
              data-y={state.coin.y.toFixed(4)}
              style={{ left: `${state.coin.x * 100}%`, top: `${state.coin.y * 100}%`, width: size, height: size }}
            />
          ) : (
            <div className="game-over">
              <strong data-testid="game-winner">{state.winner.name} wins!</strong>
              <button type="button" className="primary" onClick={() => dispatch({ type: 'reset', seed: Date.now() })}>
                New round
              </button>
            </div>
          )}
          {dotList.map((d) => (
            <div
              key={d.id}
              className="dot"
              data-testid="remote-dot"
              data-name={d.name}
              style={{ background: d.color }}
              ref={(el) => {
                const r = remotes.current.get(d.id)
                if (r) r.el = el
              }}
            >
              <span className="dot-label">{d.name}</span>
            </div>
          ))}
          <div ref={myDot} className="dot dot-me" data-testid="my-dot" style={{ background: me.color }}>
            <span className="dot-label">{me.name}</span>
          </div>
        </div>
        <div className="game-side">
          <h3>
            Round {state.round} <span className="muted">· first to {TARGET_SCORE}</span>
          </h3>
          <ol className="scoreboard" data-testid="scoreboard">
            {board.map(([id, s]) => (
              <li key={id} data-testid="score-row" data-name={s.name} data-score={s.score}>
                <span className="swatch" style={{ background: s.color }} />
                <span className="score-name">
                  {s.name}
                  {id === me.id ? ' (you)' : ''}
                </span>
                <strong className="score">{s.score}</strong>
              </li>
            ))}
          </ol>
          <ul className="events">
            {[...state.events].reverse().map((e) => (
              <li key={e.id}>
                <span className="swatch" style={{ background: e.color }} /> {e.text}
              </li>
            ))}
          </ul>
          <p className="muted small">
            Steer with the pointer (or arrow keys / WASD). Positions are volatile datagrams; coins and scores go through
            a shared reducer, so a coin two players reach at once goes to whoever the server ordered first.
          </p>
          <button type="button" onClick={() => dispatch({ type: 'reset', seed: Date.now() })}>
            Restart round
          </button>
        </div>
      </div>
    </div>
  )
}
