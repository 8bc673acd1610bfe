import type React from 'react'
import { CounterDemo } from './Counter'
import { CursorsDemo } from './Cursors'
import { GameDemo } from './Game'
import { SharedStateDemo } from './SharedState'
import { TicTacToeDemo } from './TicTacToe'

export interface DemoInfo {
  route: string
  title: string
  blurb: string
  component: () => React.ReactElement
}

export const DEMOS: DemoInfo[] = [
  {
    route: '/state',
    title: 'Shared state',
    blurb: 'A slider, a checkbox and a text field that every tab in the room sees change (useSharedState).',
    component: SharedStateDemo,
  },
  {
    route: '/counter',
    title: 'Counter',
    blurb: 'A counter driven by a shared reducer: optimistic, rebased, compacted as its stream grows.',
    component: CounterDemo,
  },
  {
    route: '/tictactoe',
    title: 'Tic-tac-toe',
    blurb: 'The first player to move is X, the next one O. Out-of-turn moves are ignored by everyone.',
    component: TicTacToeDemo,
  },
  {
    route: '/cursors',
    title: 'Live cursors',
    blurb: 'Everyone’s pointer at up to 60 Hz over volatile datagrams, smoothed on arrival.',
    component: CursorsDemo,
  },
  {
    route: '/game',
    title: 'Coin chase',
    blurb: 'Steer your dot to the coin before the others do. Moves are volatile, scores go through a reducer.',
    component: GameDemo,
  },
]
