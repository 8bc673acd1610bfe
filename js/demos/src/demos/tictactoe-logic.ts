export type Mark = 'X' | 'O'
export type Cell = Mark | null

export interface Player {
  id: string
  name: string
}

export interface TicTacToeState {
  board: Cell[]
  players: { X: Player | null; O: Player | null }
  next: Mark
  /** The winner, 'draw', or null while the game goes on. */
  outcome: Mark | 'draw' | null
  /** The winning line's cells. */
  line: number[] | null
}

export type TicTacToeAction = { type: 'move'; cell: number; player: Player } | { type: 'reset' }

export const LINES: ReadonlyArray<readonly [number, number, number]> = [
  [0, 1, 2],
  [3, 4, 5],
  [6, 7, 8],
  [0, 3, 6],
  [1, 4, 7],
  [2, 5, 8],
  [0, 4, 8],
  [2, 4, 6],
]

export function initialTicTacToe(): TicTacToeState {
  return { board: Array<Cell>(9).fill(null), players: { X: null, O: null }, next: 'X', outcome: null, line: null }
}

/** Why a move would be ignored, or null if it is legal. */
export function moveProblem(state: TicTacToeState, cell: number, playerId: string): string | null {
  if (state.outcome !== null) return 'The game is over: reset to play again.'
  if (!Number.isInteger(cell) || cell < 0 || cell > 8) return 'No such cell.'
  if (state.board[cell] !== null) return 'That cell is taken.'
  const mark = markOf(state, playerId)
  if (mark === null) {
    if (state.players.X !== null && state.players.O !== null) return 'Two players are already playing: watch.'
    // A newcomer takes the free seat, but only when it is that seat's turn.
    const seat: Mark = state.players.X === null ? 'X' : 'O'
    return seat === state.next ? null : 'Not your turn.'
  }
  return mark === state.next ? null : 'Not your turn.'
}

/** The mark of a seated player, or null. */
export function markOf(state: TicTacToeState, playerId: string): Mark | null {
  if (state.players.X?.id === playerId) return 'X'
  if (state.players.O?.id === playerId) return 'O'
  return null
}

function outcomeOf(board: Cell[]): { outcome: Mark | 'draw' | null; line: number[] | null } {
  for (const line of LINES) {
    const [a, b, c] = line
    const mark = board[a]
    if (mark && mark === board[b] && mark === board[c]) return { outcome: mark, line: [...line] }
  }
  return { outcome: board.every((c) => c !== null) ? 'draw' : null, line: null }
}

/**
 * Applied by every client in the server's order, so all agree: the first mover is X, the next distinct player O;
 * out-of-turn moves, moves on a taken cell, moves by a third player and moves after the end are ignored.
 */
export function ticTacToeReducer(state: TicTacToeState, action: TicTacToeAction): TicTacToeState {
  if (action.type === 'reset') return initialTicTacToe()
  if (action.type !== 'move') return state
  if (moveProblem(state, action.cell, action.player.id) !== null) return state
  const mark = state.next
  const players = { ...state.players }
  if (players[mark] === null) players[mark] = { id: action.player.id, name: action.player.name }
  const board = [...state.board]
  board[action.cell] = mark
  const { outcome, line } = outcomeOf(board)
  return { board, players, next: mark === 'X' ? 'O' : 'X', outcome, line }
}
