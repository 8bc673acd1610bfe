import type { DbConnection } from './connection.js'
import type { SequenceValue } from './types.js'

export interface PresenceMessage<T> {
  client: string
  value: T
}

export type WrappedPresenceMessage<T> = {
  value: T
  lastSeen: number
}

/**
 * Broadcasts this client's presence (a `relay` of `{value, client}`, volatile by default) at least every
 * `maxPresenceInterval` ms and tracks the peers' presence; a peer silent for twice that long has left, and the
 * callback is told.
 */
export class PresenceListener<T> {
  private state: T
  private key: string
  private clientId: string
  private db: DbConnection
  private callback: (presence: Record<string, WrappedPresenceMessage<T>>) => void
  private onLeave: (clientId: string) => void
  private presence: Record<string, WrappedPresenceMessage<T>> = {}
  private interval: ReturnType<typeof setInterval> | null = null
  private minPresenceInterval: number
  private maxPresenceInterval: number
  private expireAfter: number
  private volatile: boolean
  private lastUpdate = 0
  private nextUpdate: number
  private updateHandle: ReturnType<typeof setTimeout> | null = null
  private active = false

  constructor(options: {
    /** Initial state of the client's own presence. */
    initialState: T
    /** Connection to the DriftDB room. */
    db: DbConnection
    /** Client ID. */
    clientId: string
    /** Key to listen for presence messages on (defaults to `__presence`). */
    key?: string
    /** Called when the presence of any peer changes, a peer leaving included. */
    callback?: (presence: Record<string, WrappedPresenceMessage<T>>) => void
    /** Called with the id of a peer that left (no message for `expireAfter` ms). */
    onLeave?: (clientId: string) => void
    /** Minimum interval between presence updates (defaults to 20 ms). */
    minPresenceInterval?: number
    /** Maximum interval between presence updates (defaults to 1 second). */
    maxPresenceInterval?: number
    /** A peer is gone after this much silence (defaults to twice `maxPresenceInterval`). */
    expireAfter?: number
    /** Send presence as volatile relays (datagrams over WebTransport). Default true. */
    volatile?: boolean
  }) {
    this.state = options.initialState
    this.db = options.db
    this.key = options.key ?? '__presence'
    this.clientId = options.clientId
    this.callback = options.callback ?? (() => {})
    this.onLeave = options.onLeave ?? (() => {})
    this.minPresenceInterval = options.minPresenceInterval ?? 20
    this.maxPresenceInterval = options.maxPresenceInterval ?? 1000
    this.expireAfter = options.expireAfter ?? this.maxPresenceInterval * 2
    this.volatile = options.volatile ?? true
    this.nextUpdate = Date.now()
    this.onMessage = this.onMessage.bind(this)
  }

  /** The peers currently present (this client excluded). */
  get peers(): Record<string, WrappedPresenceMessage<T>> {
    return this.presence
  }

  subscribe(): void {
    this.active = true
    this.updateHandle = setTimeout(() => this.update(), 0)
    this.db.subscribe(this.key, this.onMessage)
    this.interval = setInterval(
      () => this.sweep(),
      Math.max(10, Math.min(this.maxPresenceInterval, this.expireAfter) / 2),
    )
  }

  destroy(): void {
    this.active = false
    if (this.interval !== null) clearInterval(this.interval)
    if (this.updateHandle !== null) clearTimeout(this.updateHandle)
    this.interval = null
    this.updateHandle = null
    this.db.unsubscribe(this.key, this.onMessage)
  }

  /** Removes peers silent for longer than `expireAfter` and tells the callbacks. Returns the ids removed. */
  sweep(now: number = Date.now()): string[] {
    const gone = Object.keys(this.presence).filter((c) => now - this.presence[c]!.lastSeen > this.expireAfter)
    if (gone.length === 0) return gone
    const next = { ...this.presence }
    for (const c of gone) delete next[c]
    this.presence = next
    for (const c of gone) this.onLeave(c)
    this.callback(this.presence)
    return gone
  }

  /** Handles one presence message (public for tests; called by the subscription). */
  onMessage(event: SequenceValue, now: number = Date.now()): void {
    const message = event.value as PresenceMessage<T> | null
    if (message === null || typeof message !== 'object' || typeof message.client !== 'string') return
    if (message.client === this.clientId) return
    this.presence = { ...this.presence, [message.client]: { value: message.value, lastSeen: now } }
    this.callback(this.presence)
  }

  private update(): void {
    if (!this.active) return
    this.db.send({
      type: 'push',
      action: { type: 'relay' },
      value: { value: this.state, client: this.clientId },
      key: this.key,
      ...(this.volatile ? { volatile: true } : {}),
    })
    this.nextUpdate = Date.now() + this.maxPresenceInterval
    this.lastUpdate = Date.now()
    this.updateHandle = setTimeout(() => this.update(), this.maxPresenceInterval)
  }

  /**
   * Update the client's own presence state. Debounced: several calls within `minPresenceInterval` send only the
   * last value.
   */
  updateState(value: T): void {
    if (JSON.stringify(value) === JSON.stringify(this.state)) return
    this.state = value
    if (!this.active) return
    const nextUpdate = this.lastUpdate + this.minPresenceInterval
    if (nextUpdate < this.nextUpdate) {
      this.nextUpdate = nextUpdate
      if (this.updateHandle !== null) clearTimeout(this.updateHandle)
      this.updateHandle = setTimeout(() => this.update(), Math.max(0, this.nextUpdate - Date.now()))
    }
  }
}
