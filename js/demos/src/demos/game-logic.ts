export const TARGET_SCORE = 10
/** Dot and coin radii in arena units (the arena is 1 × 1). */
export const DOT_RADIUS = 0.03
export const COIN_RADIUS = 0.025
/** Arena units per second. */
export const SPEED = 0.55

export interface Coin {
  n: number
  x: number
  y: number
}

export interface Scorer {
  name: string
  color: string
  score: number
}

export interface GameEvent {
  id: number
  text: string
  color: string
}

export interface GameState {
  round: number
  seed: number
  coin: Coin
  scores: Record<string, Scorer>
  /** The newest last; a few are kept. */
  events: GameEvent[]
  nextEventId: number
  winner: { id: string; name: string } | null
}

export type GameAction =
  | { type: 'join'; player: string; name: string; color: string }
  | { type: 'collect'; n: number; player: string; name: string; color: string }
  | { type: 'reset'; seed: number }

const MAX_EVENTS = 6

function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function spot(seed: number, n: number, attempt: number): { x: number; y: number } {
  const h1 = mix((seed | 0) ^ mix(n * 16 + attempt + 0x9e3779b9))
  const h2 = mix(h1 ^ 0x68e31da4)
  return { x: 0.08 + (0.84 * h1) / 4294967296, y: 0.08 + (0.84 * h2) / 4294967296 }
}

/**
 * Deterministic coin positions: every client computes the same coin from the round's seed. A coin never appears
 * next to the previous one (where the player who just took it stands).
 */
export function nextCoin(seed: number, previous: Coin | null): Coin {
  const n = previous ? previous.n + 1 : 0
  let p = spot(seed, n, 0)
  for (let attempt = 1; previous && Math.hypot(p.x - previous.x, p.y - previous.y) < 0.3 && attempt < 16; attempt++) {
    p = spot(seed, n, attempt)
  }
  return { n, ...p }
}

export function initialGame(seed = 1): GameState {
  return { round: 1, seed, coin: nextCoin(seed, null), scores: {}, events: [], nextEventId: 1, winner: null }
}

function withEvent(state: GameState, text: string, color: string): Pick<GameState, 'events' | 'nextEventId'> {
  const events = [...state.events, { id: state.nextEventId, text, color }].slice(-MAX_EVENTS)
  return { events, nextEventId: state.nextEventId + 1 }
}

/**
 * Applied in the server's order by every client. Only the first `collect` of the current coin scores: a late claim
 * (another player got there first) is ignored, so all scoreboards agree.
 */
export function gameReducer(state: GameState, action: GameAction): GameState {
  switch (action.type) {
    case 'join': {
      const existing = state.scores[action.player]
      if (existing && existing.name === action.name && existing.color === action.color) return state
      const scores = {
        ...state.scores,
        [action.player]: { name: action.name, color: action.color, score: existing?.score ?? 0 },
      }
      const joined = existing ? {} : withEvent(state, `${action.name} joined`, action.color)
      return { ...state, scores, ...joined }
    }
    case 'collect': {
      if (state.winner !== null || action.n !== state.coin.n) return state
      const before = state.scores[action.player]?.score ?? 0
      const score = before + 1
      const scores = { ...state.scores, [action.player]: { name: action.name, color: action.color, score } }
      let next: GameState = {
        ...state,
        scores,
        coin: nextCoin(state.seed, state.coin),
        ...withEvent(state, `${action.name} got coin ${action.n + 1} (${score})`, action.color),
      }
      if (score >= TARGET_SCORE) {
        next = {
          ...next,
          winner: { id: action.player, name: action.name },
          ...withEvent(next, `${action.name} wins round ${state.round}!`, action.color),
        }
      }
      return next
    }
    case 'reset': {
      const scores: Record<string, Scorer> = {}
      for (const [id, s] of Object.entries(state.scores)) scores[id] = { ...s, score: 0 }
      return {
        ...state,
        round: state.round + 1,
        seed: action.seed,
        coin: nextCoin(action.seed, null),
        scores,
        winner: null,
        ...withEvent(state, `Round ${state.round + 1}: go!`, '#64748b'),
      }
    }
    default:
      return state
  }
}
