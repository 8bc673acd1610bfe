import type { DbConnection, ResetEvent } from './connection.js'
import type { SequenceValue } from './types.js'

/** The value shape other DriftDB clients interoperate with: `{v: state, i: instance}`. */
interface WrappedState<T> {
  v: T
  i: string
}

/**
 * Stores a single value on a key (with `replace`) and listens for changes from other clients.
 */
export class StateListener<T> {
  lastUpdateSent = 0
  lastValue: T | null = null
  debounceTimeout: ReturnType<typeof setTimeout> | null = null
  debounceMillis: number
  /** The current value (remote or local), or null before any. */
  state: T | null = null
  randId: string
  handler: (value: SequenceValue) => void
  callback: (value: T) => void
  db: DbConnection
  key: string
  /** Re-send the current value when the server lost the room's history (epoch change) and holds none. */
  republishOnReset: boolean
  private resetPending = false
  private receivedSinceReset = false

  constructor(opts: {
    callback: (value: T) => void
    db: DbConnection
    key: string
    debounceMillis?: number
    republishOnReset?: boolean
  }) {
    this.callback = opts.callback
    this.db = opts.db
    this.key = opts.key
    this.setStateOptimistic = this.setStateOptimistic.bind(this)
    this.sendUpdate = this.sendUpdate.bind(this)
    this.randId = Math.random().toString(36).substring(7)
    this.debounceMillis = opts.debounceMillis ?? 20
    this.republishOnReset = opts.republishOnReset ?? true
    this.onReset = this.onReset.bind(this)
    this.onInit = this.onInit.bind(this)
    this.handler = (value: SequenceValue) => {
      const wv = value.value as WrappedState<T> | null
      if (wv === null || typeof wv !== 'object') return
      this.receivedSinceReset = true
      if (wv.i !== this.randId) {
        this.state = wv.v
        this.callback(wv.v)
      }
    }
  }

  subscribe(): void {
    this.db.subscribe(this.key, this.handler, undefined, { onReset: this.onReset, onInit: this.onInit })
  }

  /** The server's history was reset (e.g. it restarted): a replay of the new history follows. */
  onReset(event?: ResetEvent): void {
    // Another room's value must not be carried over; a restarted server's room gets ours back.
    this.resetPending = event?.roomChanged !== true
    this.receivedSinceReset = false
  }

  /** After the replay that follows a reset: if the key is empty there, restore our value so nothing is lost. */
  onInit(): void {
    if (!this.resetPending) return
    this.resetPending = false
    if (this.republishOnReset && !this.receivedSinceReset && this.state !== null) {
      this.lastValue = this.state
      this.sendUpdate()
    }
  }

  destroy(): void {
    if (this.debounceTimeout !== null) {
      // Do not lose the last local change.
      this.sendUpdate()
    }
    this.db.unsubscribe(this.key, this.handler)
  }

  onMessage(value: SequenceValue): void {
    this.callback(value.value as T)
    this.state = value.value as T
  }

  sendUpdate(): void {
    if (this.debounceTimeout !== null) {
      clearTimeout(this.debounceTimeout)
      this.debounceTimeout = null
    }
    this.lastUpdateSent = performance.now()
    const v: WrappedState<T | null> = { v: this.lastValue, i: this.randId }
    this.db.send({ type: 'push', action: { type: 'replace' }, value: v, key: this.key })
  }

  /** Sets the value locally at once and sends it (debounced to one message per `debounceMillis`). */
  setStateOptimistic(value: T): void {
    this.state = value
    this.callback(value)
    this.lastValue = value
    const now = performance.now()
    if (now - this.lastUpdateSent < this.debounceMillis) {
      if (this.debounceTimeout === null) {
        this.debounceTimeout = setTimeout(this.sendUpdate, this.debounceMillis)
      }
    } else {
      this.sendUpdate()
    }
  }
}
