import { useSharedReducer } from 'driftdb-react'
import React, { useEffect, useState } from 'react'
import { useIdentity } from '../identity'
import { initialTicTacToe, markOf, moveProblem, ticTacToeReducer } from './tictactoe-logic'

export function TicTacToeDemo(): React.ReactElement {
  const me = useIdentity()
  const [state, dispatch] = useSharedReducer('tictactoe', ticTacToeReducer, undefined, initialTicTacToe)
  const [hint, setHint] = useState<string | null>(null)
  useEffect(() => {
    if (hint === null) return
    const timer = setTimeout(() => setHint(null), 2_000)
    return () => clearTimeout(timer)
  }, [hint])

  const mine = markOf(state, me.id)
  const play = (cell: number) => {
    // Every click is dispatched: the shared reducer itself ignores illegal moves, on every client alike.
    setHint(moveProblem(state, cell, me.id))
    dispatch({ type: 'move', cell, player: { id: me.id, name: me.name } })
  }

  let status: string
  if (state.outcome === 'draw') status = 'Draw!'
  else if (state.outcome) status = `${state.outcome} wins!`
  else if (state.players[state.next] === null)
    status = `${state.next} to move: the next player to click takes ${state.next}`
  else status = mine === state.next ? `Your turn (${mine})` : `${state.next} to move`

  const seat = (mark: 'X' | 'O') => {
    const p = state.players[mark]
    return (
      <div className={`seat ${state.next === mark && !state.outcome ? 'seat-turn' : ''}`} data-testid={`seat-${mark}`}>
        <span className={`mark mark-${mark}`}>{mark}</span>
        <span>{p ? `${p.name}${p.id === me.id ? ' (you)' : ''}` : 'free seat'}</span>
      </div>
    )
  }

  return (
    <div className="card demo ttt">
      <div className="seats">
        {seat('X')}
        {seat('O')}
      </div>
      <div
        className={`ttt-status ${state.outcome ? 'ttt-over' : ''}`}
        data-testid="ttt-status"
        data-outcome={state.outcome ?? ''}
        data-next={state.next}
      >
        {status}
      </div>
      <div className="board" role="grid" aria-label="Board">
        {state.board.map((cell, i) => (
          <button
            type="button"
            key={i}
            className={`cell ${cell ? `mark-${cell}` : ''} ${state.line?.includes(i) ? 'win' : ''}`}
            data-testid={`cell-${i}`}
            data-mark={cell ?? ''}
            onClick={() => play(i)}
            aria-label={`Cell ${i + 1}${cell ? `: ${cell}` : ''}`}
          >
            {cell}
          </button>
        ))}
      </div>
      <div className="ttt-footer">
        <span className="hint" data-testid="ttt-hint" role="status">
          {hint ?? ''}
        </span>
        <button type="button" data-testid="ttt-reset" onClick={() => dispatch({ type: 'reset' })}>
          New game
        </button>
      </div>
    </div>
  )
}
