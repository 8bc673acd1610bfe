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

/** A stroke being drawn, as relayed while the pointer is down: the points so far and the author's client id. */
export interface LiveStroke extends Stroke {
  c: string
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
