import type React from 'react'
import { CounterDemo } from './Counter'
import { CursorsDemo } from './Cursors'
import { GameDemo } from './Game'
import { lazyDemo } from './lazy'
import { SharedStateDemo } from './SharedState'
import { TicTacToeDemo } from './TicTacToe'
import { WebRtcChatDemo } from './WebRtcChat'
import { WhiteboardDemo } from './Whiteboard'

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
  {
    route: '/whiteboard',
    title: 'Whiteboard',
    blurb: 'Draw together: lines in progress stream as volatile relays, finished strokes are stored and compacted.',
    component: WhiteboardDemo,
  },
  {
    route: '/webrtc',
    title: 'WebRTC chat',
    blurb: 'Peer-to-peer chat over WebRTC data channels, signaled through DriftDB, with each peer’s connection state.',
    component: WebRtcChatDemo,
  },
  {
    route: '/text',
    title: 'Collaborative text',
    blurb: 'A CodeMirror editor on a Yjs document synced by y-driftdb, with everyone’s cursor. Works offline too.',
    component: lazyDemo(() => import('./CollabText').then((m) => ({ default: m.CollabTextDemo }))),
  },
]
