import type { DbConnection, ResetEvent } from './connection.js'
import type { SequenceValue } from './types.js'

/** What the reducer appends: `{apply: action, i: instance}` plus `n`, this instance's action counter (1, 2, ...). */
interface ApplyEntry<A> {
  apply: A
  i: string
  n?: number
}
/** What compaction stores: `{reset: state}` plus `applied`, the highest `n` applied per instance. */
interface ResetEntry<T> {
  reset: T
  applied?: Record<string, number>
}

interface Pending<A> {
  n: number
  action: A
  /** The `connectionId` of the connection the action went out on, or 0 while unsent. */
  sentOn: number
}

function clone<T>(value: T): T {
  return typeof structuredClone === 'function' ? structuredClone(value) : (JSON.parse(JSON.stringify(value)) as T)
}

/**
 * A reducer shared by every client in the room: actions are appended to a stream on `key` and applied in the
 * server's order. Local actions apply at once (optimistically) and are rebased over remote ones: the state shown is
 * always the confirmed state followed by this client's pending actions, so every client shows the same state once
 * quiet. The stream is compacted (`{reset: state}` at the last confirmed seq) above `sizeThreshold` entries.
 *
 * Exactly once: each instance numbers its actions (`n`) and sends them strictly in order, holding them while it is
 * offline or resubscribing. After a reconnection, the actions the server did not get (lost in flight) are sent again,
 * in order, before any newer one; so the actions of one instance that reach the stream always form a prefix 1..k of
 * its numbering. Every client tracks k per instance (carried through compaction as `applied`) and skips a repeated
 * action, so a resend can never apply twice.
 */
export class Reducer<T, A> {
  /** State from the confirmed (sequenced) actions only. */
  confirmedState: T
  confirmedSeq = 0
  /** Confirmed state plus pending local actions: what the callback sees. */
  state: T
  pending: Array<Pending<A>> = []
  /** The highest action number applied, per instance. */
  applied: Record<string, number> = {}
  readonly key: string
  readonly randId = Math.random().toString(36).substring(2, 10)
  private counter = 0
  /** The connection whose resubscription this reducer has caught up with (0: none yet). */
  private synced = 0
  private readonly reducer: (state: T, action: A) => T
  private readonly initialValue: T
  private readonly sizeThreshold: number
  private readonly db: DbConnection
  private readonly callback: (state: T) => void

  constructor(opts: {
    /** A key identifying the stream to use for the reducer. */
    key: string
    /** The reducer function applied when dispatch is called. */
    reducer: (state: T, action: A) => T
    /** The initial state passed to the reducer. */
    initialValue: T
    /** The number of messages to keep in the stream before compacting (default 30). */
    sizeThreshold?: number
    /** The database connection to use. */
    db: DbConnection
    /** Called when the state changes, from a local dispatch or a remote event. */
    callback: (state: T) => void
  }) {
    this.key = opts.key
    this.reducer = opts.reducer
    this.initialValue = clone(opts.initialValue)
    this.sizeThreshold = opts.sizeThreshold ?? 30
    this.db = opts.db
    this.callback = opts.callback
    this.confirmedState = clone(this.initialValue)
    this.state = clone(this.initialValue)
    this.dispatch = this.dispatch.bind(this)
    this.onSequenceValue = this.onSequenceValue.bind(this)
    this.onSize = this.onSize.bind(this)
    this.onReset = this.onReset.bind(this)
    this.onInit = this.onInit.bind(this)
  }

  subscribe(): void {
    this.db.subscribe(this.key, this.onSequenceValue, this.onSize, { onReset: this.onReset, onInit: this.onInit })
  }

  destroy(): void {
    this.db.unsubscribe(this.key, this.onSequenceValue, this.onSize)
  }

  /** Applies `action` locally at once and appends it to the shared stream (once caught up with the server). */
  dispatch(action: A): void {
    const p: Pending<A> = { n: ++this.counter, action, sentOn: 0 }
    this.pending.push(p)
    // Only send in order: not before the older pending actions went out on this connection.
    if (this.synced === this.db.connectionId && this.pending.every((q) => q === p || q.sentOn === this.synced)) {
      this.sendPending(p)
    }
    this.state = this.reducer(this.state, clone(action))
    this.callback(this.state)
  }

  /** Sends one pending action on the current connection, never through the offline queue. */
  private sendPending(p: Pending<A>): boolean {
    const value: ApplyEntry<A> = { apply: p.action, i: this.randId, n: p.n }
    const sent = this.db.send({ type: 'push', action: { type: 'append' }, value, key: this.key }, { queue: false })
    if (sent !== false) p.sentOn = this.db.connectionId
    return sent !== false
  }

  /**
   * After each `init` (the subscription, and the resubscription that follows a reconnection) the stream holds every
   * action of ours the server applied: send the others, in order.
   */
  onInit(): void {
    this.synced = this.db.connectionId
    for (const p of this.pending) {
      if (p.sentOn === this.synced) continue
      if (!this.sendPending(p)) break
    }
  }

  /** Recomputes the shown state: confirmed state, then the pending actions in order. */
  private rebase(): void {
    const mine = this.applied[this.randId] ?? 0
    this.pending = this.pending.filter((p) => p.n > mine)
    let state = clone(this.confirmedState)
    for (const p of this.pending) state = this.reducer(state, clone(p.action))
    this.state = state
    this.callback(this.state)
  }

  onSequenceValue(sequenceValue: SequenceValue): void {
    if (sequenceValue.seq <= this.confirmedSeq) return
    const value = sequenceValue.value as Partial<ApplyEntry<A> & ResetEntry<T>> | null
    if (value === null || typeof value !== 'object') return
    if (value.reset !== undefined) {
      this.confirmedState = clone(value.reset)
      this.confirmedSeq = sequenceValue.seq
      if (value.applied && typeof value.applied === 'object') {
        for (const [i, n] of Object.entries(value.applied)) {
          if (typeof n === 'number') this.applied[i] = Math.max(this.applied[i] ?? 0, n)
        }
      }
      this.rebase()
      return
    }
    if (value.apply !== undefined) {
      this.confirmedSeq = sequenceValue.seq
      if (typeof value.i === 'string' && typeof value.n === 'number') {
        // A repeated action (a resend of one the server had after all) is skipped by every client alike.
        if (value.n <= (this.applied[value.i] ?? 0)) return
        this.applied[value.i] = value.n
      }
      this.confirmedState = this.reducer(this.confirmedState, clone(value.apply))
      this.rebase()
    }
  }

  onSize(size: number): void {
    if (size > this.sizeThreshold && this.confirmedSeq !== 0) {
      const value: ResetEntry<T> = { reset: this.confirmedState, applied: this.applied }
      this.db.send({ type: 'push', action: { type: 'compact', seq: this.confirmedSeq }, value, key: this.key })
    }
  }

  /**
   * The server's history was reset (epoch change): start over from the initial value, keeping pending actions (they
   * go to the new history). After a switch to another room, pending actions belong to the old room and are dropped.
   */
  onReset(event?: ResetEvent): void {
    if (event?.roomChanged === true) this.pending = []
    this.confirmedState = clone(this.initialValue)
    this.confirmedSeq = 0
    this.applied = {}
    this.rebase()
  }
}
