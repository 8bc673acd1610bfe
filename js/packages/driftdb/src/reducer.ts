import type { DbConnection } from './connection.js'
import type { SequenceValue } from './types.js'

/** What the reducer appends: `{apply: action, i: instance}` (plus `n`, this instance's action counter). */
interface ApplyEntry<A> {
  apply: A
  i: string
  n?: number
}
interface ResetEntry<T> {
  reset: T
}

interface Pending<A> {
  n: number
  action: A
  /** The `connectionId` of the connection the action went (or will go) out on. */
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
 */
export class Reducer<T, A> {
  /** State from the confirmed (sequenced) actions only. */
  confirmedState: T
  confirmedSeq = 0
  /** Confirmed state plus pending local actions: what the callback sees. */
  state: T
  pending: Array<Pending<A>> = []
  readonly key: string
  readonly randId = Math.random().toString(36).substring(2, 10)
  private counter = 0
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

  /** Applies `action` locally at once and appends it to the shared stream. */
  dispatch(action: A): void {
    const n = ++this.counter
    const p: Pending<A> = { n, action, sentOn: this.db.connectionId }
    this.pending.push(p)
    // Sent now on the current connection, or queued for the next one.
    if (!this.send(n, action)) p.sentOn = this.db.connectionId + 1
    this.state = this.reducer(this.state, clone(action))
    this.callback(this.state)
  }

  private send(n: number, action: A): boolean {
    const value: ApplyEntry<A> = { apply: action, i: this.randId, n }
    return this.db.send({ type: 'push', action: { type: 'append' }, value, key: this.key }) !== false
  }

  /**
   * After the resubscription that follows a reconnection, the stream holds every action of ours the server
   * applied: pending actions sent on an earlier connection and still unconfirmed were lost in flight. Send them
   * again.
   */
  onInit(): void {
    const current = this.db.connectionId
    for (const p of this.pending) {
      if (p.sentOn < current) {
        p.sentOn = this.send(p.n, p.action) ? current : current + 1
      }
    }
  }

  /** Recomputes the shown state: confirmed state, then the pending actions in order. */
  private rebase(): void {
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
      this.rebase()
      return
    }
    if (value.apply !== undefined) {
      this.confirmedState = this.reducer(this.confirmedState, clone(value.apply))
      this.confirmedSeq = sequenceValue.seq
      if (value.i === this.randId) {
        // Our own action came back in order: it is confirmed, no longer pending.
        const index = typeof value.n === 'number' ? this.pending.findIndex((p) => p.n === value.n) : 0
        if (index >= 0) this.pending.splice(index, 1)
      }
      this.rebase()
    }
  }

  onSize(size: number): void {
    if (size > this.sizeThreshold && this.confirmedSeq !== 0) {
      this.db.send({
        type: 'push',
        action: { type: 'compact', seq: this.confirmedSeq },
        value: { reset: this.confirmedState },
        key: this.key,
      })
    }
  }

  /** The server's history was reset (epoch change): start over from the initial value, keeping pending actions. */
  onReset(): void {
    this.confirmedState = clone(this.initialValue)
    this.confirmedSeq = 0
    this.rebase()
  }
}
