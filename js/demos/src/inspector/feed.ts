import { decodeCbor, type MessageFromDb, type RoomResult } from 'driftdb'
import { useEffect, useState } from 'react'

/** What `GET /room/{id}/inspect` answers: what the client protocol does not tell. */
export interface RoomSnapshot {
  room: string
  epoch: string
  seq: number
  stored_bytes: number
  connections: { total: number; websocket: number; webtransport: number; debug: number }
  keys: Array<{ key: string; entries: number; bytes: number; last_seq: number | null; subscribers: number }>
}

/** One message seen on the debug connection. */
export interface FlowEntry {
  id: number
  at: number
  type: string
  key: string
  seq: number | null
  volatile: boolean
  value: unknown
}

export interface StoredEntry {
  seq: number
  value: unknown
}

/** The room as the inspector's debug connection sees it. */
export interface Feed {
  connected: boolean
  /** Each key's stored stream, from the latest full `init` the server sent for it. */
  streams: Map<string, StoredEntry[]>
  /** The newest messages first. */
  flow: FlowEntry[]
}

const FLOW_LENGTH = 100
const SNAPSHOT_EVERY_MS = 1_000

/** The server's inspect endpoint for a room: next to its HTTP send URL. */
function inspectUrl(room: RoomResult): string {
  return room.http_url.replace(/\/send$/, '/inspect')
}

/** Polls the room's snapshot; null until the first answer. */
export function useRoomSnapshot(room: RoomResult | null): { snapshot: RoomSnapshot | null; error: string | null } {
  const [state, setState] = useState<{ snapshot: RoomSnapshot | null; error: string | null }>({
    snapshot: null,
    error: null,
  })
  useEffect(() => {
    if (!room) return
    let stopped = false
    const poll = async () => {
      try {
        const response = await fetch(inspectUrl(room))
        const body = (await response.json()) as RoomSnapshot | { message: string }
        if (stopped) return
        if ('message' in body) setState({ snapshot: null, error: body.message })
        else setState({ snapshot: body, error: null })
      } catch (error) {
        if (!stopped) setState((s) => ({ ...s, error: String(error) }))
      }
    }
    void poll()
    const timer = setInterval(() => void poll(), SNAPSHOT_EVERY_MS)
    return () => {
      stopped = true
      clearInterval(timer)
    }
  }, [room])
  return state
}

/**
 * A read-only `?debug=true&cbor=true` WebSocket: a full `init` of every stored stream on connect and on each change,
 * and every relay as a `push`. CBOR keeps byte strings as bytes, so the page can show them as hex.
 */
export function useDebugFeed(room: RoomResult | null): Feed {
  const [feed, setFeed] = useState<Feed>({ connected: false, streams: new Map(), flow: [] })
  useEffect(() => {
    if (!room) return
    let nextId = 1
    let stopped = false
    let socket: WebSocket | null = null
    let retry: ReturnType<typeof setTimeout> | null = null
    const receive = (message: MessageFromDb) => {
      setFeed((f) => {
        const streams = new Map(f.streams)
        if (message.type === 'init') streams.set(message.key, message.data)
        const entry: FlowEntry = {
          id: nextId++,
          at: Date.now(),
          type: message.type,
          key: 'key' in message ? message.key : '',
          seq:
            message.type === 'push'
              ? message.seq
              : ((message.type === 'init' ? message.data.at(-1)?.seq : null) ?? null),
          volatile: message.type === 'push' && message.volatile === true,
          value: message.type === 'push' ? message.value : message.type === 'init' ? message.data.at(-1)?.value : null,
        }
        return { ...f, streams, flow: [entry, ...f.flow].slice(0, FLOW_LENGTH) }
      })
    }
    const open = () => {
      if (stopped) return
      const url = new URL(room.socket_url)
      url.searchParams.set('debug', 'true')
      url.searchParams.set('cbor', 'true')
      socket = new WebSocket(url.toString())
      socket.binaryType = 'arraybuffer'
      socket.onopen = () => setFeed((f) => ({ ...f, connected: true, streams: new Map() }))
      socket.onmessage = (event) => {
        if (!(event.data instanceof ArrayBuffer)) return
        receive(decodeCbor(new Uint8Array(event.data)) as MessageFromDb)
      }
      socket.onclose = () => {
        setFeed((f) => ({ ...f, connected: false }))
        if (!stopped) retry = setTimeout(open, 1_000)
      }
    }
    open()
    return () => {
      stopped = true
      if (retry) clearTimeout(retry)
      socket?.close()
    }
  }, [room])
  return feed
}

/** Pretty JSON, with byte strings shown as hex (`<bytes 01 ff>`). */
export function pretty(value: unknown, indent = 2): string {
  const text = JSON.stringify(
    value,
    (_key, v: unknown) =>
      v instanceof Uint8Array ? `<bytes ${Array.from(v, (b) => b.toString(16).padStart(2, '0')).join(' ')}>` : v,
    indent,
  )
  return text ?? 'undefined'
}
