import type { DbConnection } from './connection.js'
import type { SequenceValue } from './types.js'

/**
 * How a `Compactor` folds a stream of actions into a state, as in driftdb 1.0.12 (`driftdb/dist/compactor`).
 *
 * `optimistic`: a local `dispatch` applies at once, and the echo of one's own action is not shown again.
 * `crdt`: the state is updated in place and never cloned; only for reducers that are commutative and idempotent
 * (a Yjs document, say), where applying an action twice or out of order is harmless.
 */
export abstract class Compactable<T, A> {
  /** Turns a stored `{reset}` value back into a state (identity by default). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- 1.0.12's signature: the packed form is the app's
  unpackState(state: any): T {
    return state as T
  }

  /** Turns a state into the value stored by compaction (identity by default). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- 1.0.12's signature
  packState(state: T): any {
    return state
  }

  abstract applyAction(state: T, action: A): T

  abstract initialState(): T

  optimistic = false

  /** This should be true only if the reducer is commutative and idempotent. */
  crdt = false
}

/** What the compactor appends, and what compaction stores: the same value shapes as 1.0.12 and `Reducer`. */
interface CompactorEntry<A> {
  apply?: A
  i?: string
  reset?: unknown
}

/**
 * A state shared by every client in the room, kept as a stream of actions on `key` that is compacted into a single
 * `{reset: packState(state)}` entry (at the last confirmed seq) once the server reports more than `sizeThreshold`
 * entries. Behaves as driftdb 1.0.12's `Compactor`, with two differences:
 *
 * - An optimistic, non-CRDT state is rebased: `state` is always the confirmed state followed by this instance's
 *   actions not confirmed yet. 1.0.12 showed the bare confirmed state when another client's action arrived first and
 *   then ignored its own confirmations, so two clients could show different states until the next remote action.
 * - When the server's history of the key was reset (a new epoch), it starts over from `initialState()` before the
 *   replay.
 *
 * `Reducer` does not build on this class: it adds exactly-once delivery of actions across reconnections, which this
 * 1.0.12-compatible class does not promise (an action sent while the connection drops may be lost).
 */
export class Compactor<T, A> {
  state: T
  lastConfirmedState: T | null
  lastConfirmedSeq: number
  db: DbConnection
  key: string
  callback: (state: T) => void
  sizeThreshold: number
  compactable: Compactable<T, A>
  randId: string
  /** This instance's optimistic actions not confirmed yet, oldest first (their echoes arrive in this order). */
  private unconfirmed: A[] = []

  constructor(opts: {
    /** A key identifying the stream to use for the reducer. */
    key: string
    compactable: Compactable<T, A>
    /** The number of messages to keep in the stream before compacting. */
    sizeThreshold?: number
    /** The database connection to use. */
    db: DbConnection
    /** A callback function called when the state changes, either because of a local call to dispatch or a remote event. */
    callback: (state: T) => void
  }) {
    this.compactable = opts.compactable
    this.state = this.compactable.initialState()
    this.lastConfirmedState = null
    this.lastConfirmedSeq = 0
    this.db = opts.db
    this.randId = Math.random().toString(36).substring(7)
    this.key = opts.key
    this.callback = opts.callback
    this.sizeThreshold = opts.sizeThreshold || 30
    this.onSequenceValue = this.onSequenceValue.bind(this)
    this.onSize = this.onSize.bind(this)
    this.onReset = this.onReset.bind(this)
    this.dispatch = this.dispatch.bind(this)
  }

  /** A CRDT state is shared as is; any other state is copied, so that the confirmed state is never changed in place. */
  maybeClone(state: T): T {
    return this.compactable.crdt ? state : structuredClone(state)
  }

  subscribe(): void {
    this.lastConfirmedState = this.maybeClone(this.state)
    this.db.subscribe(this.key, this.onSequenceValue, this.onSize, { onReset: this.onReset })
  }

  destroy(): void {
    this.db.unsubscribe(this.key, this.onSequenceValue, this.onSize)
  }

  dispatch(action: A): void {
    const value: CompactorEntry<A> = { apply: action, i: this.randId }
    this.db.send({ type: 'push', action: { type: 'append' }, value, key: this.key })
    if (this.compactable.optimistic) {
      if (!this.compactable.crdt) this.unconfirmed.push(action)
      this.state = this.compactable.applyAction(this.state, action)
      this.callback(this.state)
    }
  }

  onSequenceValue(sequenceValue: SequenceValue): void {
    if (sequenceValue.seq <= this.lastConfirmedSeq) return
    const value = sequenceValue.value as CompactorEntry<A> | null
    if (value !== null && typeof value === 'object' && value.reset !== undefined) {
      this.lastConfirmedState = this.compactable.unpackState(value.reset)
      this.lastConfirmedSeq = sequenceValue.seq
      // A replay (after a reconnection) may hold our unconfirmed actions inside the reset: never apply them twice.
      this.unconfirmed = []
      this.state = this.maybeClone(this.lastConfirmedState)
      this.callback(this.state)
      return
    }
    if (value !== null && typeof value === 'object' && value.apply !== undefined) {
      this.lastConfirmedState = this.compactable.applyAction(this.confirmed(), value.apply)
      this.lastConfirmedSeq = sequenceValue.seq
      const mine = value.i === this.randId
      if (mine) this.unconfirmed.shift()
      // An optimistic instance already shows its own action: the rebased state is unchanged.
      if (!mine || !this.compactable.optimistic) {
        this.state = this.rebased()
        this.callback(this.state)
      }
      return
    }
    console.log('Unknown message', sequenceValue.value)
  }

  onSize(size: number): void {
    if (size > this.sizeThreshold && this.lastConfirmedSeq !== 0) {
      const value: CompactorEntry<A> = { reset: this.compactable.packState(this.confirmed()) }
      this.db.send({ type: 'push', action: { type: 'compact', seq: this.lastConfirmedSeq }, value, key: this.key })
    }
  }

  /** The server no longer has the history this state was built from: start over, the replay from 0 follows. */
  private onReset(): void {
    this.lastConfirmedState = this.compactable.initialState()
    this.lastConfirmedSeq = 0
    this.unconfirmed = []
    this.state = this.maybeClone(this.lastConfirmedState)
    this.callback(this.state)
  }

  /** The confirmed state followed by this instance's unconfirmed actions (none unless optimistic and not a CRDT). */
  private rebased(): T {
    let state = this.maybeClone(this.confirmed())
    for (const action of this.unconfirmed) state = this.compactable.applyAction(state, structuredClone(action))
    return state
  }

  /** The confirmed state; before `subscribe()` (1.0.12 allows dispatching then) the initial one. */
  private confirmed(): T {
    this.lastConfirmedState ??= this.maybeClone(this.state)
    return this.lastConfirmedState
  }
}
