import type { DbConnection, SequenceValue } from 'driftdb'
import { useDatabase } from 'driftdb-react'
import { useEffect, useRef } from 'react'

/**
 * Sends a stream of positions (cursors, dots) at up to `hz` per second as volatile relays, which travel as
 * datagrams over WebTransport. The last position is never lost: a trailing send follows the throttle window, and
 * once the stream goes quiet for `settleMs` the final position is sent once more as a reliable relay (a datagram
 * may be dropped). Nothing is sent while `enabled()` is false (nobody else is in the room).
 */
export class ThrottledSender<T> {
  sent = 0
  private lastSent = 0
  private latest: T | null = null
  private dirty = false
  private trailing: ReturnType<typeof setTimeout> | null = null
  private settle: ReturnType<typeof setTimeout> | null = null

  constructor(
    private readonly db: DbConnection,
    private readonly key: string,
    private readonly enabled: () => boolean,
    private readonly hz = 60,
    private readonly settleMs = 200,
  ) {}

  /** A new value: sent now, or at the end of the throttle window (only the latest is sent). */
  update(value: T): void {
    this.latest = value
    this.dirty = true
    if (!this.enabled()) return
    const wait = this.lastSent + 1000 / this.hz - performance.now()
    if (wait <= 0) this.flush()
    else if (this.trailing === null) {
      this.trailing = setTimeout(() => {
        this.trailing = null
        this.flush()
      }, wait)
    }
  }

  /** Sends the latest value again, reliably (e.g. when someone joins). */
  resend(): void {
    if (this.latest !== null && this.enabled()) this.send(this.latest, false)
  }

  /** Stops timers (the last value is sent reliably if it is still pending). */
  stop(): void {
    if (this.trailing !== null) clearTimeout(this.trailing)
    if (this.settle !== null) clearTimeout(this.settle)
    this.trailing = null
    this.settle = null
  }

  private flush(): void {
    if (!this.dirty || this.latest === null || !this.enabled()) return
    this.dirty = false
    this.send(this.latest, true)
    if (this.settle !== null) clearTimeout(this.settle)
    this.settle = setTimeout(() => {
      this.settle = null
      if (this.latest !== null && !this.dirty) this.send(this.latest, false)
    }, this.settleMs)
  }

  private send(value: T, volatile: boolean): void {
    this.lastSent = performance.now()
    this.sent++
    this.db.send({
      type: 'push',
      key: this.key,
      value,
      action: { type: 'relay' },
      ...(volatile ? { volatile: true } : {}),
    })
  }
}

/** Calls `onValue` for every relay on `key` (volatile or not) from the connection. */
export function useRelayListener<T>(key: string, onValue: (value: T) => void): void {
  const db = useDatabase()
  const callback = useRef(onValue)
  callback.current = onValue
  useEffect(() => {
    const listener = (event: SequenceValue) => callback.current(event.value as T)
    db.subscribe(key, listener)
    return () => db.unsubscribe(key, listener)
  }, [db, key])
}

/** A value that eases towards a moving target (exponential smoothing, time constant `tau` ms). */
export function approach(current: number, target: number, dtMs: number, tau = 45): number {
  return current + (target - current) * (1 - Math.exp(-dtMs / tau))
}

/**
 * Calls `tick(dt)` on every animation frame while the component is mounted, `dt` being the milliseconds since the
 * previous frame, at most 100 (so a tab coming back from the background does not jump). The latest `tick` is used,
 * so it may read the component's current props and state.
 */
export function useFrameLoop(tick: (dt: number) => void): void {
  const latest = useRef(tick)
  useEffect(() => {
    latest.current = tick
  })
  useEffect(() => {
    let frame = 0
    let last = performance.now()
    const loop = (now: number) => {
      const dt = Math.min(100, now - last)
      last = now
      latest.current(dt)
      frame = requestAnimationFrame(loop)
    }
    frame = requestAnimationFrame(loop)
    return () => cancelAnimationFrame(frame)
  }, [])
}
