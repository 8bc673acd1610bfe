import {
  Api,
  DbConnection,
  PresenceListener,
  Reducer,
  StateListener,
  uniqueClientId,
  WebRtcConnections,
  type ConnectOptions,
  type DataChannelSpec,
  type ConnectionStatus,
  type RoomResult,
  type SequenceValue,
  type TransportOption,
  type WebRtcMessage,
  type WebRtcPeerInfo,
  type WrappedPresenceMessage,
} from 'driftdb'
import React, { useCallback, useContext, useEffect, useRef, useState } from 'react'

const ROOM_ID_KEY = '_driftdb_room'

function getRoomId(): string | null {
  if (typeof document === 'undefined') return null
  return new URL(document.location.href).searchParams.get(ROOM_ID_KEY)
}

function setRoomId(roomId: string): void {
  if (typeof document === 'undefined' || typeof window === 'undefined') return
  const url = new URL(document.location.href)
  url.searchParams.set(ROOM_ID_KEY, roomId)
  window.history.replaceState({}, '', url.toString())
}

/**
 * A React context which is used to pass a database connection down the component tree
 * via the `DriftDBProvider` provider and `useDatabase` hook.
 */
export const DatabaseContext = React.createContext<DbConnection | null>(null)

/** The room the nearest provider is connected to (null until known). */
export const RoomContext = React.createContext<RoomResult | null>(null)

/**
 * Provides a `DbConnection` to all child components. Reconnects (keeping the children's subscriptions) when
 * `api`, `room`, `useBinary` or `transport` change.
 */
export function DriftDBProvider(props: {
  /** Elements under the provider in the tree. */
  children: React.ReactNode
  /** The URL of the DriftDB API. */
  api: string
  /** The room ID to connect to. If not provided, attempts to extract the room ID
   *  from the URL and creates a new room if one is not present. */
  room?: string
  /** Whether to use binary messages (enables raw typed arrays in messages). */
  useBinary?: boolean
  /** `auto` (default: WebTransport when available, WebSocket fallback), `webtransport` or `websocket`. */
  transport?: TransportOption
  /** Further connection options (e.g. a `WebSocket` implementation outside browsers, timings). */
  connectOptions?: Omit<ConnectOptions, 'url' | 'room' | 'cbor' | 'transport' | 'token' | 'getToken'>
  /** A room token, when the server checks tokens. */
  token?: string
  /** Fetches a room token (e.g. from the app's backend); called again before expiry and on reconnect. */
  getToken?: (room: string) => Promise<string>
}): React.ReactElement {
  const dbRef = useRef<DbConnection | null>(null)
  if (dbRef.current === null) dbRef.current = new DbConnection()
  const [room, setRoom] = useState<RoomResult | null>(null)
  const optionsRef = useRef(props.connectOptions)
  optionsRef.current = props.connectOptions
  // Read at connect time: a new function identity (an inline arrow) must not reconnect.
  const tokenRef = useRef({ token: props.token, getToken: props.getToken })
  tokenRef.current = { token: props.token, getToken: props.getToken }

  useEffect(() => {
    const db = dbRef.current!
    let cancelled = false
    const api = new Api(props.api)
    const roomId = props.room ?? getRoomId()
    const { token, getToken } = tokenRef.current
    const lookup = roomId
      ? (getToken ? getToken(roomId) : Promise.resolve(token)).then((t) => api.getRoom(roomId, t))
      : api.newRoom()
    lookup.then(
      (result) => {
        if (cancelled) return
        if (!props.room) setRoomId(result.room)
        setRoom(result)
        void db.connect({
          // Where a reconnect asks for the room again: in a cluster it may have moved to another node.
          api: props.api,
          ...optionsRef.current,
          token: tokenRef.current.token,
          getToken: tokenRef.current.getToken,
          room: result,
          cbor: props.useBinary ?? false,
          transport: props.transport ?? 'auto',
        })
      },
      (error: unknown) => {
        if (!cancelled) console.error('driftdb-react: room lookup failed', error)
      },
    )
    return () => {
      cancelled = true
      // Keeps the children's subscriptions: they carry over to the next connection.
      db.close()
    }
  }, [props.api, props.room, props.useBinary, props.transport])

  return (
    <DatabaseContext.Provider value={dbRef.current}>
      <RoomContext.Provider value={room}>{props.children}</RoomContext.Provider>
    </DatabaseContext.Provider>
  )
}

/**
 * Returns the connection of the nearest `DriftDBProvider`; throws outside one.
 */
export function useDatabase(): DbConnection {
  const db = useContext(DatabaseContext)
  if (db === null) throw new Error('useDatabase must be used within a DriftDBProvider')
  return db
}

/** The room of the nearest provider, or null until it is known. */
export function useRoom(): RoomResult | null {
  return useContext(RoomContext)
}

type SetterFunction<T> = (value: T | ((v: T) => T)) => void

/**
 * A shared state variable identified by `key`: every client in the room sees the last value set.
 * The function form of the setter receives the current value (local or remote).
 */
export function useSharedState<T>(key: string, initialValue: T): [T, SetterFunction<T>] {
  const db = useDatabase()
  const [state, setInnerState] = useState<T>(initialValue)
  const current = useRef<T>(initialValue)
  const listener = useRef<StateListener<T> | null>(null)

  useEffect(() => {
    const l = new StateListener<T>({
      key,
      db,
      callback: (value: T) => {
        current.current = value
        setInnerState(value)
      },
    })
    listener.current = l
    l.subscribe()
    return () => {
      l.destroy()
      if (listener.current === l) listener.current = null
    }
  }, [db, key])

  const setState = useCallback<SetterFunction<T>>((value) => {
    const next = typeof value === 'function' ? (value as (v: T) => T)(current.current) : value
    current.current = next
    if (listener.current) listener.current.setStateOptimistic(next)
    else setInnerState(next)
  }, [])

  return [state, setState]
}

/**
 * A reducer shared by every client in the room. Local actions apply at once and are rebased over remote ones.
 */
export function useSharedReducer<State, Action>(
  key: string,
  reducer: (state: State, action: Action) => State,
  initialValue: State,
): [State, (action: Action) => void]
export function useSharedReducer<State, Action, InitialValue>(
  key: string,
  reducer: (state: State, action: Action) => State,
  initialValue: InitialValue,
  init: (initialValue: InitialValue) => State,
): [State, (action: Action) => void]
export function useSharedReducer<State, Action, InitialValue>(
  key: string,
  reducer: (state: State, action: Action) => State,
  initialValue: InitialValue | State,
  init: (initialValue: InitialValue) => State = (a: InitialValue) => a as unknown as State,
): [State, (action: Action) => void] {
  const db = useDatabase()
  const initialState = useRef<State | null>(null)
  if (initialState.current === null) initialState.current = init(initialValue as InitialValue)
  const [state, setState] = useState<State>(initialState.current)
  const reducerFn = useRef(reducer)
  reducerFn.current = reducer
  const shared = useRef<Reducer<State, Action> | null>(null)
  const queued = useRef<Action[]>([])

  useEffect(() => {
    const r = new Reducer<State, Action>({
      key,
      reducer: (s, a) => reducerFn.current(s, a),
      initialValue: initialState.current as State,
      sizeThreshold: 30,
      db,
      callback: setState,
    })
    shared.current = r
    r.subscribe()
    for (const a of queued.current.splice(0)) r.dispatch(a)
    return () => {
      r.destroy()
      if (shared.current === r) shared.current = null
    }
  }, [db, key])

  const dispatch = useCallback((action: Action) => {
    if (shared.current) shared.current.dispatch(action)
    else queued.current.push(action)
  }, [])

  return [state, dispatch]
}

/** The connection status of the nearest provider (`connected`, `debugUrl` and the `transport` in use). */
export function useConnectionStatus(): ConnectionStatus {
  const db = useDatabase()
  const [status, setStatus] = useState<ConnectionStatus>(db.status)
  useEffect(() => {
    setStatus(db.status)
    db.statusListener.addListener(setStatus)
    return () => db.statusListener.removeListener(setStatus)
  }, [db])
  return status
}

/** The connection's round-trip latency in ms, measured every `intervalMs` (5 s), or null before the first. */
export function useLatency(intervalMs = 5_000): number | null {
  const db = useDatabase()
  const [latency, setLatency] = useState<number | null>(null)
  useEffect(() => {
    let active = true
    const update = async () => {
      const result = await db.testLatency()
      if (active && result !== null) setLatency(result)
    }
    const interval = setInterval(() => void update(), intervalMs)
    void update()
    const onStatus = (s: ConnectionStatus) => {
      if (s.connected) void update()
    }
    db.statusListener.addListener(onStatus)
    return () => {
      active = false
      clearInterval(interval)
      db.statusListener.removeListener(onStatus)
    }
  }, [db, intervalMs])
  return latency
}

/** A client ID kept in session storage, stable across reloads (null during server-side rendering). */
export function useUniqueClientId(): string {
  const id = useRef<string | null>(null)
  if (id.current === null) id.current = uniqueClientId()
  return id.current
}

/**
 * The presence of every other client in the room, while broadcasting this client's `value` (as volatile relays by
 * default). Peers that go silent disappear from the map.
 */
export function usePresence<T>(
  key: string,
  value: T,
  options: { volatile?: boolean; minPresenceInterval?: number; maxPresenceInterval?: number } = {},
): Record<string, WrappedPresenceMessage<T>> {
  const db = useDatabase()
  const clientId = useUniqueClientId()
  const [presence, setPresence] = useState<Record<string, WrappedPresenceMessage<T>>>({})
  const listener = useRef<PresenceListener<T> | null>(null)
  const latest = useRef(value)
  latest.current = value
  const { volatile, minPresenceInterval, maxPresenceInterval } = options

  useEffect(() => {
    const l = new PresenceListener<T>({
      key,
      db,
      clientId,
      initialState: latest.current,
      callback: setPresence,
      ...(volatile === undefined ? {} : { volatile }),
      ...(minPresenceInterval === undefined ? {} : { minPresenceInterval }),
      ...(maxPresenceInterval === undefined ? {} : { maxPresenceInterval }),
    })
    listener.current = l
    l.subscribe()
    return () => {
      l.destroy()
      if (listener.current === l) listener.current = null
    }
  }, [db, key, clientId, volatile, minPresenceInterval, maxPresenceInterval])

  useEffect(() => {
    listener.current?.updateState(value)
  })

  return presence
}

/**
 * A high-rate value (cursor, game input) shared through volatile relays: datagrams over WebTransport, dropped
 * rather than queued when a reader is behind, never stored. Returns the latest value from any client and a
 * setter (throttled to one message per `throttleMs`, the last value always sent).
 */
export function useVolatileState<T>(
  key: string,
  initialValue: T,
  options: { throttleMs?: number } = {},
): [T, (value: T) => void, { from: string | null }] {
  const db = useDatabase()
  const clientId = useUniqueClientId()
  const [state, setState] = useState<{ value: T; from: string | null }>({ value: initialValue, from: null })
  const throttleMs = options.throttleMs ?? 16
  const lastSent = useRef(0)
  const pending = useRef<{ value: T } | null>(null)
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null)

  useEffect(() => {
    const listener = (event: SequenceValue) => {
      const v = event.value as { v: T; c: string } | null
      if (v === null || typeof v !== 'object' || v.c === clientId) return
      setState({ value: v.v, from: v.c })
    }
    db.subscribe(key, listener)
    return () => {
      db.unsubscribe(key, listener)
      if (timer.current !== null) clearTimeout(timer.current)
      timer.current = null
    }
  }, [db, key, clientId])

  const setValue = useCallback(
    (value: T) => {
      setState({ value, from: clientId })
      const send = (v: T) => {
        lastSent.current = Date.now()
        db.send({ type: 'push', key, value: { v, c: clientId }, action: { type: 'relay' }, volatile: true })
      }
      const wait = lastSent.current + throttleMs - Date.now()
      if (wait <= 0) {
        send(value)
        return
      }
      pending.current = { value }
      if (timer.current === null) {
        timer.current = setTimeout(() => {
          timer.current = null
          const p = pending.current
          pending.current = null
          if (p) send(p.value)
        }, wait)
      }
    },
    [db, key, clientId, throttleMs],
  )

  return [state.value, setValue, { from: state.from }]
}

/** What `useWebRtc` returns. */
export interface WebRtcState {
  /** Every peer's connection and channel states, by client id. */
  peers: Record<string, WebRtcPeerInfo>
  /** The last message received from each peer. */
  lastMessage: Record<string, WebRtcMessage>
  /** Sends on one peer's channel; false if it is not open. */
  send: (peerId: string, channel: string, data: string | ArrayBuffer | Uint8Array<ArrayBuffer>) => boolean
  /** Sends to every peer whose channel is open; returns how many. */
  broadcast: (channel: string, data: string | ArrayBuffer | Uint8Array<ArrayBuffer>) => number
  /** The underlying connections (null before the first effect), e.g. to add media tracks. */
  connections: WebRtcConnections | null
}

/**
 * WebRTC data channels with every peer in the room, signaled through DriftDB (see `WebRtcConnections`). `onMessage`
 * sees every message (the returned `lastMessage` only the last per peer). `channels` and `rtcConfiguration` are read
 * once, when the connections are made.
 */
export function useWebRtc(
  options: {
    key?: string
    channels?: DataChannelSpec[]
    rtcConfiguration?: RTCConfiguration
    onMessage?: (message: WebRtcMessage) => void
  } = {},
): WebRtcState {
  const db = useDatabase()
  const clientId = useUniqueClientId()
  const [connections, setConnections] = useState<WebRtcConnections | null>(null)
  const [peers, setPeers] = useState<Record<string, WebRtcPeerInfo>>({})
  const [lastMessage, setLastMessage] = useState<Record<string, WebRtcMessage>>({})
  const onMessage = useRef(options.onMessage)
  onMessage.current = options.onMessage
  const setup = useRef({ channels: options.channels, rtcConfiguration: options.rtcConfiguration })
  const { key } = options

  useEffect(() => {
    const c = new WebRtcConnections({
      db,
      clientId,
      ...(key === undefined ? {} : { key }),
      ...(setup.current.channels ? { channels: setup.current.channels } : {}),
      ...(setup.current.rtcConfiguration ? { rtcConfiguration: setup.current.rtcConfiguration } : {}),
    })
    const onPeers = (p: Record<string, WebRtcPeerInfo>) => setPeers(p)
    const onMsg = (m: WebRtcMessage) => {
      setLastMessage((last) => ({ ...last, [m.from]: m }))
      onMessage.current?.(m)
    }
    c.peersListener.addListener(onPeers)
    c.messageListener.addListener(onMsg)
    setConnections(c)
    return () => {
      c.peersListener.removeListener(onPeers)
      c.messageListener.removeListener(onMsg)
      c.destroy()
      setPeers({})
    }
  }, [db, clientId, key])

  const send = useCallback<WebRtcState['send']>(
    (peerId, channel, data) => connections?.send(peerId, channel, data) ?? false,
    [connections],
  )
  const broadcast = useCallback<WebRtcState['broadcast']>(
    (channel, data) => connections?.broadcast(channel, data) ?? 0,
    [connections],
  )
  return { peers, lastMessage, send, broadcast, connections }
}

/** Displays the connection status, the transport in use and the latency. */
export function StatusIndicator(): React.ReactElement {
  const status = useConnectionStatus()
  const latency = useLatency()
  const latencyStr = latency === null ? '...' : Math.round(latency).toString()
  const color = status.connected ? 'green' : 'red'
  return (
    <div
      style={{ display: 'inline-block', border: '1px solid #ccc', background: '#eee', borderRadius: 10, padding: 10 }}
    >
      DriftDB status:{' '}
      <span style={{ color, fontWeight: 'bold' }}>{status.connected ? 'Connected' : 'Disconnected'}</span>
      {status.connected ? (
        <>
          {' '}
          <span style={{ fontSize: '70%', color: '#aaa' }}>
            <a
              target="_blank"
              rel="noreferrer"
              style={{ textDecoration: 'none', color: '#aaa' }}
              href={status.debugUrl}
            >
              (ui)
            </a>
            ({status.transport}, {latencyStr}ms)
          </span>
        </>
      ) : null}
    </div>
  )
}

/** What `RoomQRCode` uses of the `qrcode` package. */
interface QRCodeApi {
  toDataURL(text: string, options: { width: number; margin: number }): Promise<string>
}

let qrcodeApi: Promise<QRCodeApi | null> | null = null

/**
 * Loads `qrcode`, an optional peer dependency, on first use: a bundle that never renders `RoomQRCode` needs no
 * `qrcode`, and one without it still builds (bundlers leave a dynamic import inside try/catch to fail at run time).
 * Resolves to null, with one warning, when it is not installed.
 */
function loadQRCode(): Promise<QRCodeApi | null> {
  qrcodeApi ??= (async () => {
    try {
      const mod: { default?: QRCodeApi } & Partial<QRCodeApi> = await import('qrcode')
      const api = typeof mod.toDataURL === 'function' ? (mod as QRCodeApi) : mod.default
      if (typeof api?.toDataURL !== 'function') throw new Error('qrcode has no toDataURL')
      return api
    } catch (e) {
      console.warn(
        'driftdb-react: install qrcode to render RoomQRCode as a QR image (`npm install qrcode`); ' +
          'showing a link to the room URL instead.',
        e,
      )
      return null
    }
  })()
  return qrcodeApi
}

/**
 * A QR code of the current page URL (which holds the room ID), rendered locally (no third-party service) with the
 * optional peer dependency `qrcode`, loaded on first render. Without `qrcode` installed it renders a link to the URL
 * instead (and warns once). Renders nothing until the room ID is in the URL, or `url` is given.
 */
export function RoomQRCode(props: { url?: string; size?: number } = {}): React.ReactElement {
  const db = useDatabase()
  const [pageUrl, setPageUrl] = useState<string | null>(props.url ?? null)
  // The image for `forUrl`, or `null` for a link when `qrcode` is missing.
  const [qr, setQr] = useState<{ forUrl: string; dataUrl: string | null } | null>(null)
  const size = props.size ?? 200

  useEffect(() => {
    if (props.url) {
      setPageUrl(props.url)
      return
    }
    const update = () => {
      if (getRoomId() !== null) setPageUrl(document.location.href)
    }
    update()
    db.statusListener.addListener(update)
    return () => db.statusListener.removeListener(update)
  }, [db, props.url])

  useEffect(() => {
    if (!pageUrl) return
    let active = true
    loadQRCode()
      .then((api) => (api ? api.toDataURL(pageUrl, { width: size, margin: 1 }) : null))
      .then(
        (dataUrl) => {
          if (active) setQr({ forUrl: pageUrl, dataUrl })
        },
        () => {},
      )
    return () => {
      active = false
    }
  }, [pageUrl, size])

  if (!pageUrl || !qr) return <></>
  if (qr.dataUrl === null) {
    return (
      <a href={pageUrl} target="_blank" rel="noreferrer">
        {pageUrl}
      </a>
    )
  }
  return <img src={qr.dataUrl} alt={`QR code for ${qr.forUrl}`} width={size} height={size} />
}

export type { ConnectionStatus, WrappedPresenceMessage } from 'driftdb'
