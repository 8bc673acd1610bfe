/** The pen colours. */
export const WHITEBOARD_COLORS = ['#1f2937', '#e5484d', '#3e63dd', '#30a46c', '#f76b15'] as const

/** A finished stroke: a polyline in board coordinates (0..1000 on both axes), flat `[x0, y0, x1, y1, ...]`. */
export interface Stroke {
  id: string
  color: string
  width: number
  /** Who drew it (their name at the time). */
  by: string
  points: number[]
}

/**
 * A stroke being drawn, as relayed while the pointer is down: its latest points only (the last `LIVE_WINDOW`
 * coordinates, from index `from` of the stroke's flat list), so that every relay fits one datagram however long the
 * stroke gets. Each relay overlaps the previous ones, so a lost one leaves no gap.
 */
export interface LiveStroke extends Stroke {
  c: string
  from: number
}

/** Coordinates (two per point) in each live relay. */
export const LIVE_WINDOW = 64

/** The live relay for a stroke being drawn by client `c`. */
export function liveRelay(stroke: Stroke, c: string): LiveStroke {
  const from = Math.max(0, stroke.points.length - LIVE_WINDOW)
  return { ...stroke, c, from, points: stroke.points.slice(from) }
}

/**
 * What a receiver knows of a live stroke after `relay`, given what it had (`known`, for the same stroke, from index
 * `known.from`): the overlapping windows are stitched; after a gap (it joined mid-stroke) it starts from the relay.
 */
export function mergeLive(known: LiveStroke | undefined, relay: LiveStroke): LiveStroke {
  if (!known || known.id !== relay.id || relay.from > known.from + known.points.length) return relay
  const keep = Math.max(0, relay.from - known.from)
  return { ...relay, from: known.from, points: [...known.points.slice(0, keep), ...relay.points] }
}

export interface BoardState {
  strokes: Stroke[]
}

export type BoardAction = { type: 'stroke'; stroke: Stroke } | { type: 'clear' }

/** The shared board: strokes in the server's order; `clear` wipes what came before it. */
export function boardReducer(state: BoardState, action: BoardAction): BoardState {
  switch (action.type) {
    case 'stroke':
      // A resend after a reconnection is skipped by the reducer itself; this keeps ids unique regardless.
      if (state.strokes.some((s) => s.id === action.stroke.id)) return state
      return { strokes: [...state.strokes, action.stroke] }
    case 'clear':
      return { strokes: [] }
    default:
      return state
  }
}

/** An SVG path for a flat point list (a single point draws a dot). */
export function pointsToPath(points: number[]): string {
  if (points.length < 2) return ''
  const [x0, y0] = points
  let d = `M${x0} ${y0}`
  if (points.length === 2) return `${d} l0.01 0`
  for (let i = 2; i + 1 < points.length; i += 2) d += ` L${points[i]} ${points[i + 1]}`
  return d
}
