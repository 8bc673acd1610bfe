import type { DbConnection, MessageFromDb, RoomResult } from 'driftdb'
import { useDatabase, useRoom } from 'driftdb-react'
import React, { useContext, useEffect, useRef, useState } from 'react'

export interface KeyStats {
  key: string
  /** Entries in the key's stored stream. */
  size: number
  /** The highest seq seen for the key. */
  lastSeq: number
  /** Times the stream was compacted (a new `{reset}` entry at its head) since this page opened. */
  compactions: number
  /** Relays seen (not stored). */
  relays: number
}

export interface LoggedMessage {
  id: number
  at: number
  type: string
  key: string
  seq: number | null
  summary: string
  volatile: boolean
}

export interface DebugSnapshot {
  keys: KeyStats[]
  messages: LoggedMessage[]
  received: number
  receivedByType: Record<string, number>
  /** The debug WebSocket (`?debug=true`) that reports every key's stored stream. */
  watching: boolean
}

const MAX_MESSAGES = 14

function summarize(value: unknown): string {
  let text: string
  try {
    text = JSON.stringify(value) ?? 'undefined'
  } catch {
    text = String(value)
  }
  return text.length > 90 ? `${text.slice(0, 87)}...` : text
}

function isReset(value: unknown): boolean {
  return value !== null && typeof value === 'object' && 'reset' in value
}

/**
 * Collects what the debug panel shows: the messages this page's connection receives, and every key's stored stream
 * as reported by a second, read-only WebSocket opened with `?debug=true` (a full `init` on every change).
 */
class DebugStore {
  private keys = new Map<string, KeyStats & { resetSeq: number }>()
  private messages: LoggedMessage[] = []
  private received = 0
  private receivedByType: Record<string, number> = {}
  private nextId = 1
  private version = 0
  private watching = false
  private socket: WebSocket | null = null
  private retry: ReturnType<typeof setTimeout> | null = null
  private stopped = false

  onMessage = (message: MessageFromDb): void => {
    this.received++
    this.receivedByType[message.type] = (this.receivedByType[message.type] ?? 0) + 1
    if (message.type === 'pong') return
    const entry: LoggedMessage = {
      id: this.nextId++,
      at: Date.now(),
      type: message.type,
      key: 'key' in message ? message.key : '',
      seq: message.type === 'push' ? message.seq : null,
      summary:
        message.type === 'push'
          ? summarize(message.value)
          : message.type === 'init'
            ? `${message.data.length} entr${message.data.length === 1 ? 'y' : 'ies'}`
            : message.type === 'stream_size'
              ? `size ${message.size}`
              : message.type === 'error'
                ? message.message
                : '',
      volatile: message.type === 'push' && message.volatile === true,
    }
    this.messages.push(entry)
    if (this.messages.length > MAX_MESSAGES) this.messages.shift()
    this.version++
  }

  watch(room: RoomResult): void {
    this.stopped = false
    const open = () => {
      if (this.stopped) return
      const url = new URL(room.socket_url)
      url.searchParams.set('debug', 'true')
      const socket = new WebSocket(url.toString())
      this.socket = socket
      socket.onopen = () => {
        this.watching = true
        this.version++
      }
      socket.onmessage = (event) => {
        if (typeof event.data !== 'string') return
        try {
          this.onDebugMessage(JSON.parse(event.data) as MessageFromDb)
        } catch {
          // Not ours to judge: the panel only reports.
        }
      }
      socket.onclose = () => {
        this.watching = false
        this.version++
        if (!this.stopped) this.retry = setTimeout(open, 1_000)
      }
    }
    open()
  }

  stop(): void {
    this.stopped = true
    if (this.retry !== null) clearTimeout(this.retry)
    this.socket?.close()
    this.socket = null
  }

  private stats(key: string) {
    let s = this.keys.get(key)
    if (!s) {
      s = { key, size: 0, lastSeq: 0, compactions: 0, relays: 0, resetSeq: 0 }
      this.keys.set(key, s)
    }
    return s
  }

  private onDebugMessage(message: MessageFromDb): void {
    if (message.type === 'init') {
      const s = this.stats(message.key)
      const first = message.data[0]
      if (first && isReset(first.value) && first.seq !== s.resetSeq) {
        if (s.resetSeq !== 0 || s.size > 0) s.compactions++
        s.resetSeq = first.seq
      }
      s.size = message.data.length
      const last = message.data[message.data.length - 1]
      if (last) s.lastSeq = Math.max(s.lastSeq, last.seq)
      this.version++
    } else if (message.type === 'push') {
      const s = this.stats(message.key)
      s.relays++
      s.lastSeq = Math.max(s.lastSeq, message.seq)
      this.version++
    }
  }

  get changeCount(): number {
    return this.version
  }

  snapshot(): DebugSnapshot {
    return {
      keys: [...this.keys.values()]
        .map(({ resetSeq: _resetSeq, ...k }) => k)
        .sort((a, b) => a.key.localeCompare(b.key)),
      messages: [...this.messages].reverse(),
      received: this.received,
      receivedByType: { ...this.receivedByType },
      watching: this.watching,
    }
  }
}

const DebugContext = React.createContext<DebugStore | null>(null)

export function DebugProvider(props: { children: React.ReactNode }): React.ReactElement {
  const db: DbConnection = useDatabase()
  const room = useRoom()
  const store = useRef<DebugStore | null>(null)
  if (store.current === null) store.current = new DebugStore()

  useEffect(() => {
    const s = store.current!
    db.messageListener.addListener(s.onMessage)
    return () => db.messageListener.removeListener(s.onMessage)
  }, [db])

  useEffect(() => {
    if (!room) return
    const s = store.current!
    s.watch(room)
    return () => s.stop()
  }, [room])

  return <DebugContext.Provider value={store.current}>{props.children}</DebugContext.Provider>
}

/** The debug data, refreshed at most every `intervalMs` (the connection may carry 60 messages a second). */
export function useDebugSnapshot(intervalMs = 250): DebugSnapshot {
  const store = useContext(DebugContext)
  if (store === null) throw new Error('useDebugSnapshot must be used within a DebugProvider')
  const [snapshot, setSnapshot] = useState(() => store.snapshot())
  useEffect(() => {
    let seen = store.changeCount
    const timer = setInterval(() => {
      if (store.changeCount === seen) return
      seen = store.changeCount
      setSnapshot(store.snapshot())
    }, intervalMs)
    return () => clearInterval(timer)
  }, [store, intervalMs])
  return snapshot
}

/** The stored-stream stats of one key (undefined until the debug socket reports it). */
export function useKeyStats(key: string): KeyStats | undefined {
  return useDebugSnapshot().keys.find((k) => k.key === key)
}
