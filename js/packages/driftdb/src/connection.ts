import { backoffDelay, type BackoffOptions } from './backoff.js'
import { EventListener, SubscriptionManager } from './events.js'
import {
  openWebSocket,
  openWebTransport,
  type CertificateHash,
  type Opening,
  type Transport,
  type WebSocketConstructor,
  type WebTransportConstructor,
} from './transport.js'
import type {
  ConnectionStatus,
  Key,
  MessageFromDb,
  MessageToDb,
  SequenceValue,
  TransportKind,
  TransportOption,
} from './types.js'
import { bearer, roomSource, roomUrl, type RoomResult } from './api.js'

/** Options of `DbConnection.connect`. */
export interface ConnectOptions {
  /** The room's WebSocket URL (`socket_url`). Optional when `room` is given. */
  url?: string
  /** A room result from `Api`: supplies `socket_url`, `webtransport_url` and `certificate_hashes`. */
  room?: RoomResult
  /**
   * The base URL of the Room API the `room` came from (as given to `Api`). On each reconnection attempt the room's
   * info is read again there (`GET /room/ID`), then from the socket URL's own host, and a changed `socket_url`,
   * `webtransport_url` or `certificate_hashes` is used: in a cluster, a room whose node died moves to another node.
   * Defaults to the `Api` that returned `room`.
   */
  api?: string
  /** Use CBOR on the WebSocket (byte strings round-trip as `Uint8Array`). Default false. */
  cbor?: boolean
  /** `auto` (default), `webtransport` or `websocket`. */
  transport?: TransportOption
  /** The room's WebTransport URL (`webtransport_url`). */
  webtransportUrl?: string
  /** SHA-256 hashes of a self-signed server certificate (`certificate_hashes`). */
  certificateHashes?: CertificateHash[]
  /** WebSocket implementation (default `globalThis.WebSocket`; pass the `ws` package in Node 20). */
  WebSocket?: WebSocketConstructor
  /** WebTransport implementation (default `globalThis.WebTransport`). */
  WebTransport?: WebTransportConstructor
  /** How long WebTransport runs alone before WebSocket starts too, in `auto` mode (default 500 ms). */
  headStartMs?: number
  /** Give up on one connection attempt after this long (default 10 000 ms). */
  connectTimeoutMs?: number
  /** Reconnection backoff. */
  backoff?: BackoffOptions
  /** Send a ping after this much silence from the server (default 5 000 ms). */
  pingIntervalMs?: number
  /** Consider the connection dead after this much silence (default 12 000 ms). */
  deadAfterMs?: number
  /** Most messages kept while offline; the oldest are dropped beyond it (default 1 000). */
  maxQueue?: number
  /** A room token, when the server checks tokens (`--auth-key-file`). Sent as `?token=` on the connect URLs. */
  token?: string
  /**
   * Fetches a room token (typically from the app's backend). Called before each connection attempt and again
   * before the current token's `exp`, whose successor is sent in-band so the connection stays open.
   */
  getToken?: (room: string) => Promise<string>
  /** How long before `exp` `getToken` is called for a fresh token (default 30 000 ms, at most half the TTL). */
  tokenRefreshMarginMs?: number
}

/** Per-subscription callbacks beyond the reference API. */
export interface SubscribeHooks {
  /**
   * The key's history changed under it: a new epoch (the server lost the room's history), or `connect()` to another
   * room (`roomChanged`). Local state must be dropped; a replay from 0 follows.
   */
  onReset?: (event: ResetEvent) => void
  /** An `init` for the key was delivered (after the initial subscription and after each resubscription). */
  onInit?: () => void
}

export interface ResetEvent {
  key: Key
  /** The new epoch ('' when unknown yet, after a room change). */
  epoch: string
  /** True when the reset comes from connecting to another room. */
  roomChanged: boolean
}

type Listener = (event: SequenceValue) => void

interface KeyState {
  /** Highest seq delivered from the reliable stream (for resuming). */
  lastSeq: number
  /** Highest seq of a volatile relay applied. */
  lastVolatileSeq: number
  epoch: string | undefined
  /** The outstanding `get`s (their seq, and their number in send order), oldest first. */
  requests: Array<{ seq: number; id: number }>
  /** Listeners waiting for their first `init`. */
  pending: Set<Listener>
  /** Dropping pushes until the replay from 0 that follows an epoch change. */
  awaitingReplay: boolean
  hooks: Map<Listener, SubscribeHooks>
}

const DEFAULTS = {
  transport: 'auto' as TransportOption,
  headStartMs: 500,
  connectTimeoutMs: 10_000,
  pingIntervalMs: 5_000,
  deadAfterMs: 12_000,
  maxQueue: 1_000,
  tokenRefreshMarginMs: 30_000,
}

/** Builds the WebSocket URL: `?cbor=true` set once (never appended again on reconnect). */
export function socketUrl(url: string, cbor: boolean): string {
  try {
    const u = new URL(url)
    if (cbor) u.searchParams.set('cbor', 'true')
    else if (u.searchParams.get('cbor') === 'true') u.searchParams.delete('cbor')
    return u.toString()
  } catch {
    return cbor && !/[?&]cbor=true/.test(url) ? `${url}${url.includes('?') ? '&' : '?'}cbor=true` : url
  }
}

/**
 * A connection to a DriftDB room: WebTransport first with a WebSocket fallback, reconnecting with backoff and
 * resuming every subscription from the last seq seen.
 */
export class DbConnection {
  /** The transport in use, or null while disconnected. */
  connection: Transport | null = null
  status: ConnectionStatus = { connected: false }
  statusListener = new EventListener<ConnectionStatus>()
  messageListener = new EventListener<MessageFromDb>()
  /** Fired when a key's history was reset by the server (epoch change). */
  resetListener = new EventListener<ResetEvent>()
  subscriptions = new SubscriptionManager<SequenceValue>()
  sizeSubscriptions = new SubscriptionManager<number>()
  /** Messages waiting for a connection. */
  queue: Array<MessageToDb> = []
  /** The WebSocket URL in use (with `?cbor=true` when binary). */
  dbUrl: string | null = null
  reconnectLoopHandle: ReturnType<typeof setTimeout> | null = null
  activeLatencyTest: { nonce: number; start: number; promise: Promise<number>; resolve: (ms: number) => void } | null =
    null
  cbor = false
  closed = false
  /** Counts the connections established (1 for the first): tells a resend after a reconnection apart. */
  connectionId = 0

  private options: ConnectOptions & typeof DEFAULTS = { ...DEFAULTS }
  private keys = new Map<Key, KeyState>()
  private attempt = 0
  private tries = 0
  private opening: Opening[] = []
  private session = 0
  private waiters: Array<() => void> = []
  private keepalive: ReturnType<typeof setInterval> | null = null
  private lastReceived = 0
  private nonce = 1
  private warnedQueue = false
  /** Numbers every `get` sent, in send order. */
  private lastGetId = 0
  /** A ping sent after an `error`: its pong settles every `get` sent before it (see onError). */
  private refusalCheck: { nonce: number; lastGetId: number } | null = null
  /** Every socket URL (without `?cbor`) this room was reached at: room info may move it to another node. */
  private roomUrls = new Set<string>()
  /** The token the current connection was opened with (or refreshed to). */
  private token: string | null = null
  private tokenRefresh: ReturnType<typeof setTimeout> | null = null

  /**
   * Connect to a DriftDB room, or reconnect with new settings (subscriptions are kept).
   *
   * `connect(socketUrl, cbor?)` keeps the 1.0.12 form; `connect(socketUrl, options)` and `connect(options)` add the
   * transport choice and tuning. The promise resolves once connected; the connection keeps retrying in the
   * background until `disconnect()`, so it never rejects.
   */
  connect(dbUrl: string | ConnectOptions, cbor?: boolean | ConnectOptions): Promise<void> {
    let opts: ConnectOptions
    if (typeof dbUrl === 'string') {
      opts = typeof cbor === 'object' ? { ...cbor, url: dbUrl } : { url: dbUrl, cbor: cbor ?? false }
    } else {
      opts = { ...dbUrl }
    }
    const room = opts.room
    if (room) {
      opts.url ??= room.socket_url
      opts.webtransportUrl ??= room.webtransport_url
      opts.certificateHashes ??= room.certificate_hashes
      opts.api ??= roomSource(room)
    }
    if (!opts.url) throw new Error('DbConnection.connect needs a socket URL or a room')
    const merged = { ...DEFAULTS, ...stripUndefined(opts) }
    const url = socketUrl(opts.url, merged.cbor === true)

    this.stopTransport()
    const previousUrl = this.dbUrl
    this.options = merged
    this.cbor = merged.cbor === true
    this.dbUrl = url
    this.closed = false
    this.attempt = 0
    this.tries = 0
    const session = ++this.session
    if (previousUrl !== null && !this.roomUrls.has(withoutCbor(url))) {
      // Another room: what we know of each key no longer applies.
      for (const [key, ks] of this.keys) this.resetKey(key, ks, '')
      this.roomUrls.clear()
    }
    this.roomUrls.add(withoutCbor(url))
    const promise = new Promise<void>((resolve) => this.waiters.push(resolve))
    this.startAttempt(session)
    return promise
  }

  /** The transport in use, or null. */
  get transport(): TransportKind | null {
    return this.connection?.kind ?? null
  }

  private startAttempt(session: number) {
    if (session !== this.session || this.closed) return
    this.reconnectLoopHandle = null
    // On retries, fetch the room again: it may have moved to another node of a cluster, and a restarted server has a
    // new certificate (and hash) for WebTransport.
    const refresh = this.tries++ > 0 ? this.refreshRoom(session) : Promise.resolve()
    refresh
      .then(() => this.fetchToken())
      .then(() => {
        if (session !== this.session || this.closed) throw new Error('superseded')
        return this.openTransport()
      })
      .then(
        (t) => {
          if (session !== this.session || this.closed) {
            t.close()
            return
          }
          this.adopt(t, session)
        },
        () => {
          if (session !== this.session || this.closed) return
          this.scheduleReconnect(session)
        },
      )
  }

  /** The room id, from the room result or the socket URL (`…/room/ID/connect`). */
  private roomId(): string {
    const fromUrl = /\/room\/([^/?#]+)\/connect/.exec(this.options.url ?? '')?.[1]
    return this.options.room?.room ?? decodeURIComponent(fromUrl ?? '')
  }

  /** Takes the `token` option, or a fresh one from `getToken`. */
  private async fetchToken(): Promise<void> {
    const { getToken, token } = this.options
    this.token = getToken ? await getToken(this.roomId()) : (token ?? null)
  }

  /** Before the token's `exp`, fetches the next one and sends it on `t` in an `auth` message. */
  private scheduleTokenRefresh(t: Transport) {
    this.stopTokenRefresh()
    const { getToken, tokenRefreshMarginMs } = this.options
    const exp = this.token ? tokenExpiry(this.token) : null
    if (!getToken || exp === null) return
    const lifetime = exp - Date.now()
    const delay = Math.max(0, lifetime - Math.min(tokenRefreshMarginMs, lifetime / 2))
    this.tokenRefresh = setTimeout(() => {
      this.tokenRefresh = null
      getToken(this.roomId()).then(
        (fresh) => {
          if (this.connection !== t) return
          this.token = fresh
          this.rawSend({ type: 'auth', token: fresh })
          this.scheduleTokenRefresh(t)
        },
        // Without a fresh token the server closes at `exp` (4008); the reconnect asks getToken again.
        (error: unknown) => console.warn('driftdb: getToken failed', error),
      )
    }, delay)
    const handle = this.tokenRefresh as { unref?: () => void }
    handle.unref?.()
  }

  private stopTokenRefresh() {
    if (this.tokenRefresh !== null) clearTimeout(this.tokenRefresh)
    this.tokenRefresh = null
  }

  /**
   * Re-reads the room (`GET /room/ID`) when the options came from a room result: from the API base the room came from
   * (`api`), else (or when that fails) from the socket URL's own host. Adopts the answer's `socket_url` (in a cluster,
   * the room's current owner) and WebTransport URL and certificate hashes (a restarted server has a new certificate),
   * each only where the option in use is the room's own.
   */
  private async refreshRoom(session: number): Promise<void> {
    const o = this.options
    const room = o.room
    if (!room || typeof fetch !== 'function') return
    const WT = o.WebTransport ?? (globalThis as { WebTransport?: unknown }).WebTransport
    const urlFromRoom = o.url === room.socket_url
    const wtFromRoom = o.webtransportUrl === room.webtransport_url && o.transport !== 'websocket' && WT !== undefined
    if (!urlFromRoom && !wtFromRoom) return
    const sources = [o.api ? roomUrl(o.api, room.room) : null, roomInfoUrl(room.socket_url)]
    for (const source of new Set(sources)) {
      if (source === null) continue
      const fresh = await fetchRoom(source, this.token)
      if (session !== this.session || this.options !== o) return
      if (!fresh || fresh.room !== room.room || typeof fresh.socket_url !== 'string') continue
      const next: RoomResult = { ...room }
      if (urlFromRoom) {
        next.socket_url = fresh.socket_url
        next.http_url = fresh.http_url
        o.url = fresh.socket_url
        this.dbUrl = socketUrl(fresh.socket_url, this.cbor)
        this.roomUrls.add(withoutCbor(this.dbUrl))
      }
      if (o.webtransportUrl === room.webtransport_url) {
        next.webtransport_url = fresh.webtransport_url
        next.certificate_hashes = fresh.certificate_hashes
        o.webtransportUrl = fresh.webtransport_url
        o.certificateHashes = fresh.certificate_hashes
      }
      o.room = next
      return
    }
  }

  private scheduleReconnect(session: number) {
    if (this.reconnectLoopHandle !== null) clearTimeout(this.reconnectLoopHandle)
    const delay = backoffDelay(this.attempt++, this.options.backoff)
    this.reconnectLoopHandle = setTimeout(() => this.startAttempt(session), delay)
  }

  /** Opens the transport chosen by the options; in `auto`, races WebTransport (with a head start) and WebSocket. */
  private openTransport(): Promise<Transport> {
    const o = this.options
    const WT = o.WebTransport ?? (globalThis as { WebTransport?: WebTransportConstructor }).WebTransport
    const WS = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    const wtUrl = o.webtransportUrl
    const canWt = WT !== undefined && typeof wtUrl === 'string' && wtUrl.length > 0
    const wantWt = o.transport === 'webtransport' || (o.transport === 'auto' && canWt)
    const wantWs = o.transport !== 'webtransport'
    if (o.transport === 'webtransport' && !canWt) {
      return Promise.reject(new Error('WebTransport is not available (no WebTransport API or no webtransport_url)'))
    }
    if (wantWs && WS === undefined) {
      if (!wantWt) return Promise.reject(new Error('No WebSocket implementation: pass options.WebSocket'))
    }
    return new Promise<Transport>((resolve, reject) => {
      let settled = false
      let running = 0
      let wsStarted = false
      let headStart: ReturnType<typeof setTimeout> | null = null
      const openings: Opening[] = []
      this.opening = openings
      const win = (t: Transport) => {
        if (settled) {
          t.close()
          return
        }
        settled = true
        if (headStart !== null) clearTimeout(headStart)
        for (const op of openings) op.cancel()
        resolve(t)
      }
      const lose = (e: unknown) => {
        running--
        if (settled) return
        if (!wsStarted && wantWs && WS !== undefined) {
          startWs()
          return
        }
        if (running === 0) {
          settled = true
          if (headStart !== null) clearTimeout(headStart)
          reject(e instanceof Error ? e : new Error(String(e)))
        }
      }
      const track = (op: Opening) => {
        running++
        openings.push(op)
        op.promise.then(win, lose)
      }
      const startWs = () => {
        if (wsStarted || settled || WS === undefined) return
        wsStarted = true
        if (headStart !== null) clearTimeout(headStart)
        track(openWebSocket(withToken(this.dbUrl!, this.token), this.cbor, WS, o.connectTimeoutMs))
      }
      if (wantWt && WT !== undefined && wtUrl) {
        track(openWebTransport(withToken(wtUrl, this.token), o.certificateHashes, WT, o.connectTimeoutMs))
        if (wantWs) headStart = setTimeout(startWs, o.headStartMs)
      } else {
        startWs()
      }
    })
  }

  private adopt(t: Transport, session: number) {
    this.opening = []
    this.connection = t
    this.connectionId++
    this.attempt = 0
    this.lastReceived = Date.now()
    t.onmessage = (m) => {
      if (this.connection === t) this.onMessage(m)
    }
    t.onclose = () => {
      if (this.connection !== t) return
      this.connection = null
      // A ping in flight on the lost connection will not be answered: let the next test start afresh.
      this.activeLatencyTest = null
      this.stopKeepalive()
      this.stopTokenRefresh()
      this.setStatus(false)
      if (!this.closed && session === this.session) this.scheduleReconnect(session)
    }
    this.setStatus(true)
    this.refusalCheck = null // a check in flight on an earlier connection gets no pong here
    // Resubscribe every key from the last seq seen (from 0 when a listener still waits for its first init).
    for (const [key, ks] of this.keys) {
      const seq = ks.pending.size > 0 || ks.awaitingReplay ? 0 : ks.lastSeq
      ks.requests = []
      this.sendGet(key, ks, seq)
    }
    const queued = this.queue
    this.queue = []
    for (const m of queued) this.send(m)
    this.startKeepalive(t)
    this.scheduleTokenRefresh(t)
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  private startKeepalive(t: Transport) {
    this.stopKeepalive()
    const { pingIntervalMs, deadAfterMs } = this.options
    const tick = Math.max(10, Math.min(pingIntervalMs, deadAfterMs) / 2)
    this.keepalive = setInterval(() => {
      if (this.connection !== t) return
      const idle = Date.now() - this.lastReceived
      if (idle >= deadAfterMs) {
        // Dead connection: drop it (its onclose schedules the reconnect).
        t.close()
      } else if (idle >= pingIntervalMs) {
        this.rawSend({ type: 'ping', nonce: this.nonce++ })
      }
    }, tick)
    const k = this.keepalive as { unref?: () => void }
    k.unref?.()
  }

  private stopKeepalive() {
    if (this.keepalive !== null) clearInterval(this.keepalive)
    this.keepalive = null
  }

  /** Closes the current transport and pending attempts without touching subscriptions. */
  private stopTransport() {
    this.session++
    if (this.reconnectLoopHandle !== null) clearTimeout(this.reconnectLoopHandle)
    this.reconnectLoopHandle = null
    for (const op of this.opening) op.cancel()
    this.opening = []
    this.stopKeepalive()
    this.stopTokenRefresh()
    const t = this.connection
    this.connection = null
    if (t) {
      t.onclose = null
      t.onmessage = null
      t.close()
    }
  }

  private onMessage(message: MessageFromDb) {
    this.lastReceived = Date.now()
    this.messageListener.dispatch(message)
    switch (message.type) {
      case 'init':
        this.onInit(message)
        break
      case 'push':
        this.onPush(message)
        break
      case 'stream_size':
        this.sizeSubscriptions.dispatch(message.key, message.size)
        break
      case 'error':
        this.onError()
        break
      case 'pong': {
        if (this.refusalCheck !== null && message.nonce === this.refusalCheck.nonce) this.settleRefusedGets()
        const test = this.activeLatencyTest
        if (test && (message.nonce === test.nonce || message.nonce === null || message.nonce === undefined)) {
          this.activeLatencyTest = null
          test.resolve(performance.now() - test.start)
        }
        break
      }
      default:
        break
    }
  }

  private onPush(message: Extract<MessageFromDb, { type: 'push' }>) {
    const ks = this.keys.get(message.key)
    if (!ks || ks.awaitingReplay) return
    if (message.volatile === true) {
      // Volatile relays may overtake (datagrams) or be overtaken: drop stale ones.
      if (message.seq < Math.max(ks.lastSeq, ks.lastVolatileSeq)) return
      ks.lastVolatileSeq = message.seq
    } else {
      if (message.seq <= ks.lastSeq) return // already delivered (e.g. in a replay)
      ks.lastSeq = message.seq
    }
    const event = { seq: message.seq, value: message.value }
    for (const l of this.subscriptions.listeners(message.key)) if (!ks.pending.has(l)) l(event)
  }

  private onInit(message: Extract<MessageFromDb, { type: 'init' }>) {
    const key = message.key
    const ks = this.keys.get(key)
    if (!ks) return
    const requested = ks.requests.shift()?.seq ?? 0
    if (typeof message.epoch === 'string') {
      if (ks.epoch !== undefined && ks.epoch !== message.epoch) {
        this.resetKey(key, ks, message.epoch)
        if (requested > 0) {
          // This replay starts after a seq of the old history: replay the new history from 0.
          ks.awaitingReplay = true
          this.sendGet(key, ks, 0)
          return
        }
      }
      ks.epoch = message.epoch
    }
    if (ks.awaitingReplay && requested !== 0) return
    ks.awaitingReplay = false
    const fresh = requested === 0 ? new Set(ks.pending) : new Set<Listener>()
    for (const l of fresh) ks.pending.delete(l)
    const listeners = this.subscriptions.listeners(key).filter((l) => !ks.pending.has(l))
    for (const entry of message.data) {
      const isNew = entry.seq > ks.lastSeq
      for (const l of listeners) if (isNew || fresh.has(l)) l({ value: entry.value, seq: entry.seq })
      if (isNew) ks.lastSeq = entry.seq
    }
    for (const l of listeners) ks.hooks.get(l)?.onInit?.()
  }

  private resetKey(key: Key, ks: KeyState, epoch: string) {
    ks.epoch = epoch === '' ? undefined : epoch
    ks.lastSeq = 0
    ks.lastVolatileSeq = 0
    const event: ResetEvent = { key, epoch, roomChanged: epoch === '' }
    this.resetListener.dispatch(event)
    for (const l of this.subscriptions.listeners(key)) ks.hooks.get(l)?.onReset?.(event)
  }

  private sendGet(key: Key, ks: KeyState, seq: number) {
    if (!this.connection) return
    ks.requests.push({ seq, id: ++this.lastGetId })
    this.rawSend({ type: 'get', key, seq })
  }

  /**
   * An `error` names no key, but it may be the server refusing a `get` (its key limit). The server answers an
   * accepted `get` with its `init` at once and every message in order, so a `get` still unanswered when the pong of
   * a ping sent now arrives was refused.
   */
  private onError() {
    if (this.refusalCheck !== null) return // the check in flight settles this error's get too
    const nonce = this.nonce++
    if (this.rawSend({ type: 'ping', nonce })) this.refusalCheck = { nonce, lastGetId: this.lastGetId }
  }

  /**
   * Forgets the refused `get`s, so that the next listener on their key asks again instead of waiting for an init
   * that never comes. Their listeners stay pending: they have not had an init.
   */
  private settleRefusedGets() {
    const { lastGetId } = this.refusalCheck!
    this.refusalCheck = null
    for (const ks of this.keys.values()) {
      ks.requests = ks.requests.filter((request) => request.id > lastGetId)
    }
  }

  /** Sends on the current transport; false if there is none or it failed. */
  private rawSend(message: MessageToDb): boolean {
    const t = this.connection
    if (!t) return false
    try {
      t.send(message)
      return true
    } catch {
      return false
    }
  }

  private setStatus(connected: boolean) {
    const t = this.connection
    this.status =
      connected && t ? { connected: true, debugUrl: this.debugUrl() ?? '', transport: t.kind } : { connected: false }
    this.statusListener.dispatch(this.status)
  }

  /** The room inspector served by the DriftDB server itself (`/inspect?room=ID`), next to the socket's `/room/`. */
  private debugUrl(): string | null {
    if (!this.dbUrl) return null
    return inspectorUrl(this.dbUrl)
  }

  /**
   * Test the connection latency by sending a ping to the server.
   *
   * @returns A promise of the round-trip time in ms, or null if the connection is not open.
   */
  testLatency(): Promise<number> | null {
    if (!this.status.connected || !this.connection) return null
    if (!this.activeLatencyTest) {
      let resolve: (ms: number) => void = () => {}
      const promise = new Promise<number>((r) => (resolve = r))
      const test = { nonce: this.nonce++, start: performance.now(), promise, resolve }
      this.activeLatencyTest = test
      if (!this.rawSend({ type: 'ping', nonce: test.nonce })) {
        this.activeLatencyTest = null
        return null
      }
    }
    return this.activeLatencyTest.promise
  }

  /** Close the connection and forget subscriptions and queued messages (as in 1.0.12). */
  disconnect(): void {
    this.close()
    this.subscriptions = new SubscriptionManager()
    this.sizeSubscriptions = new SubscriptionManager()
    this.keys.clear()
    this.queue = []
  }

  /** Close the connection but keep subscriptions, to `connect()` again later. */
  close(): void {
    this.closed = true
    const wasConnected = this.connection !== null
    this.stopTransport()
    if (wasConnected || this.status.connected) this.setStatus(false)
  }

  /**
   * Send a message to the DriftDB server. While disconnected, messages wait in a bounded queue (volatile relays
   * are dropped: they would be stale).
   *
   * @param options `queue: false` drops the message instead of queueing it while offline.
   * @returns true if the message went out on the current connection, false if it was queued or dropped.
   */
  send(message: MessageToDb, options?: { queue?: boolean }): boolean {
    if (this.connection && this.rawSend(message)) return true
    if (options?.queue === false) return false
    if (message.type === 'push' && message.volatile === true) return false
    if (message.type === 'ping') return false
    if (message.type === 'push' && message.action.type === 'replace') {
      // A replace makes earlier queued writes to the key pointless.
      this.queue = this.queue.filter((m) => !(m.type === 'push' && m.key === message.key))
    }
    this.queue.push(message)
    const max = this.options.maxQueue
    if (this.queue.length > max) {
      this.queue.splice(0, this.queue.length - max)
      if (!this.warnedQueue) {
        this.warnedQueue = true
        console.warn(`driftdb: offline queue full (${max} messages), dropping the oldest`)
      }
    }
    return false
  }

  /**
   * Subscribe to a key in the DriftDB room.
   *
   * @param key The key to subscribe to.
   * @param listener Called with each value of the key: the stored ones first, then live ones.
   * @param sizeCallback Called with the size of the server's stored stream after this client's pushes.
   * @param hooks `onReset` (history reset by the server) and `onInit` callbacks.
   */
  subscribe(
    key: Key,
    listener: (event: SequenceValue) => void,
    sizeCallback?: (size: number) => void,
    hooks?: SubscribeHooks,
  ): void {
    let ks = this.keys.get(key)
    const isNew = ks === undefined
    if (!ks) {
      ks = {
        lastSeq: 0,
        lastVolatileSeq: 0,
        epoch: undefined,
        requests: [],
        pending: new Set(),
        awaitingReplay: false,
        hooks: new Map(),
      }
      this.keys.set(key, ks)
    }
    this.subscriptions.subscribe(key, listener)
    if (sizeCallback) this.sizeSubscriptions.subscribe(key, sizeCallback)
    if (hooks) ks.hooks.set(listener, hooks)
    ks.pending.add(listener)
    if (this.connection) {
      // A new key, or another listener on a subscribed key: it needs the whole stored stream.
      if (isNew || !ks.requests.some((r) => r.seq === 0)) this.sendGet(key, ks, 0)
    }
  }

  /**
   * Unsubscribe a listener. When the last listener of the key goes, the server is told to stop sending it.
   */
  unsubscribe(subject: Key, listener: (event: SequenceValue) => void, sizeCallback?: (size: number) => void): void {
    const ks = this.keys.get(subject)
    this.subscriptions.unsubscribe(subject, listener)
    if (sizeCallback) this.sizeSubscriptions.unsubscribe(subject, sizeCallback)
    if (!ks) return
    ks.pending.delete(listener)
    ks.hooks.delete(listener)
    if (this.subscriptions.listeners(subject).length === 0) {
      this.keys.delete(subject)
      this.sizeSubscriptions.subscriptions.delete(subject)
      this.rawSend({ type: 'unsubscribe', key: subject })
    }
  }
}

/** The room's info URL (`GET /room/ID`) from its socket URL (`ws://HOST/room/ID/connect`). */
export function roomInfoUrl(socket: string): string | null {
  try {
    const u = new URL(socket)
    u.protocol = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol
    if (!/\/connect$/.test(u.pathname)) return null
    u.pathname = u.pathname.replace(/\/connect$/, '')
    u.search = ''
    return u.toString()
  } catch {
    return null
  }
}

/** `GET url` as a room result; null on any failure (unreachable, an error status, 2 s without an answer). */
async function fetchRoom(url: string, token: string | null): Promise<RoomResult | null> {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), 2_000)
  try {
    const response = await fetch(url, { signal: controller.signal, headers: bearer(token) })
    if (!response.ok) return null
    const fresh = (await response.json()) as RoomResult | null
    return typeof fresh === 'object' && fresh !== null ? fresh : null
  } catch {
    return null
  } finally {
    clearTimeout(timer)
  }
}

/** A socket URL without its `cbor=true` parameter: the same room either way. */
function withoutCbor(url: string): string {
  return url.replace(/[?&]cbor=true/, '')
}

/** `url` with `?token=` set (tokens are base64url and dots: nothing to escape). */
export function withToken(url: string, token: string | null): string {
  if (!token) return url
  try {
    const u = new URL(url)
    u.searchParams.set('token', token)
    return u.toString()
  } catch {
    return `${url}${url.includes('?') ? '&' : '?'}token=${token}`
  }
}

/** A JWT's `exp` in milliseconds since the epoch, or null if it has none or is not a JWT. The client does not
 * verify the token (the server does); it only reads when to ask for the next one. */
export function tokenExpiry(token: string): number | null {
  try {
    const payload = token.split('.')[1] ?? ''
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/')) as string
    const exp = (JSON.parse(json) as { exp?: unknown }).exp
    return typeof exp === 'number' ? exp * 1000 : null
  } catch {
    return null
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}

/**
 * The inspector page for a room's socket URL: `ws://host/prefix/room/ID/connect` → `http://host/prefix/inspect?room=ID`
 * (`wss` → `https`, WebTransport's `https` stays). Null for a URL that does not name a room.
 */
export function inspectorUrl(socketUrl: string): string | null {
  let url: URL
  try {
    url = new URL(socketUrl)
  } catch {
    return null
  }
  const match = /^(.*)\/room\/([^/]+)\/connect\/?$/.exec(url.pathname)
  if (!match) return null
  const scheme = url.protocol === 'ws:' || url.protocol === 'http:' ? 'http:' : 'https:'
  return `${scheme}//${url.host}${match[1]}/inspect?room=${match[2]}`
}
