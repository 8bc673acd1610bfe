/**
 * The two transports behind a `DbConnection`: a WebSocket (JSON or CBOR frames) and a WebTransport session
 * (a control stream of length-prefixed postcard messages, plus datagrams for volatile relays).
 */
import { decodeCbor, encodeCbor, cborValues } from './cbor.js'
import { FrameReader, decodeServer, encodeClient, frame } from './postcard.js'
import { withExtensions } from './extensions.js'
import type { MessageFromDb, MessageToDb, TransportKind } from './types.js'

/** An open transport. `onclose` fires once, whoever closed it. */
export interface Transport {
  readonly kind: TransportKind
  /** Message counts by path (datagrams only on WebTransport). */
  readonly stats: TransportStats
  send(message: MessageToDb): void
  close(): void
  onmessage: ((message: MessageFromDb) => void) | null
  onclose: ((reason: string) => void) | null
}

export interface TransportStats {
  sent: number
  received: number
  datagramsSent: number
  datagramsReceived: number
}

const newStats = (): TransportStats => ({ sent: 0, received: 0, datagramsSent: 0, datagramsReceived: 0 })

/** An attempt to open a transport, which can be abandoned. */
export interface Opening {
  promise: Promise<Transport>
  cancel(): void
}

/** The subset of the WebSocket API used here (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number
  binaryType: string
  onopen: ((ev: unknown) => void) | null
  onclose: ((ev: unknown) => void) | null
  onerror: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  send(data: string | Uint8Array): void
  close(code?: number, reason?: string): void
}
export type WebSocketConstructor = new (url: string) => WebSocketLike

const WS_OPEN = 1
// Closing a connecting `ws` socket emits an error event, which throws without a listener.
const ignore = () => {}

function timeoutError(ms: number, what: string): Error {
  return new Error(`${what} did not open within ${ms} ms`)
}

/** Opens a WebSocket to `url` (which already carries `?cbor=true` when `cbor`), opted in to extended shapes. */
export function openWebSocket(url: string, cbor: boolean, Ctor: WebSocketConstructor, timeoutMs: number): Opening {
  let ws: WebSocketLike | null = null
  let cancelled = false
  let rejectFn: (e: Error) => void = () => {}
  const promise = new Promise<Transport>((resolve, reject) => {
    rejectFn = reject
    const socket = new Ctor(withExtensions(url))
    ws = socket
    socket.binaryType = 'arraybuffer'
    const timer = setTimeout(() => {
      fail(timeoutError(timeoutMs, 'WebSocket'))
    }, timeoutMs)
    const fail = (e: Error) => {
      clearTimeout(timer)
      socket.onopen = socket.onclose = socket.onmessage = null
      socket.onerror = ignore
      try {
        socket.close()
      } catch {
        // already closed
      }
      reject(e)
    }
    socket.onerror = () => fail(new Error(`WebSocket error connecting to ${url}`))
    socket.onclose = () => fail(new Error(`WebSocket to ${url} closed before opening`))
    socket.onopen = () => {
      clearTimeout(timer)
      if (cancelled) {
        socket.close()
        return
      }
      resolve(new WebSocketTransport(socket, cbor))
    }
  })
  return {
    promise,
    cancel() {
      cancelled = true
      if (ws && ws.readyState !== WS_OPEN) {
        ws.onopen = ws.onclose = ws.onmessage = null
        ws.onerror = ignore
        try {
          ws.close()
        } catch {
          // ignore
        }
        rejectFn(new Error('cancelled'))
      }
    },
  }
}

class WebSocketTransport implements Transport {
  readonly kind = 'websocket' as const
  readonly stats = newStats()
  onmessage: ((message: MessageFromDb) => void) | null = null
  onclose: ((reason: string) => void) | null = null
  private closed = false

  constructor(
    private readonly socket: WebSocketLike,
    private readonly cbor: boolean,
  ) {
    socket.onmessage = (event) => {
      let message: MessageFromDb
      try {
        const data = event.data
        if (typeof data === 'string') {
          message = JSON.parse(data) as MessageFromDb
        } else if (data instanceof ArrayBuffer) {
          message = decodeCbor(new Uint8Array(data)) as MessageFromDb
        } else if (data instanceof Uint8Array) {
          message = decodeCbor(data) as MessageFromDb
        } else {
          return
        }
      } catch {
        return
      }
      this.stats.received++
      this.onmessage?.(message)
    }
    socket.onclose = (ev) => {
      const code = (ev as { code?: number } | undefined)?.code
      this.finish(`WebSocket closed${code === undefined ? '' : ` (${code})`}`)
    }
    socket.onerror = () => this.finish('WebSocket error')
  }

  private finish(reason: string) {
    if (this.closed) return
    this.closed = true
    this.socket.onopen = this.socket.onclose = this.socket.onmessage = null
    this.socket.onerror = ignore
    try {
      this.socket.close()
    } catch {
      // ignore
    }
    this.onclose?.(reason)
  }

  send(message: MessageToDb): void {
    if (this.closed || this.socket.readyState !== WS_OPEN) throw new Error('WebSocket is not open')
    this.socket.send(this.cbor ? encodeCbor(message) : JSON.stringify(message))
    this.stats.sent++
  }

  close(): void {
    this.finish('closed by the client')
  }
}

/** A certificate hash for `serverCertificateHashes`: hex or base64 SHA-256, or the browser's own shape. */
export type CertificateHash = string | { algorithm?: string; value: string | ArrayLike<number> | BufferSource }

function decodeHash(value: string): Uint8Array {
  const hex = value.replace(/[:\s]/g, '')
  if (/^[0-9a-fA-F]{64}$/.test(hex)) {
    const out = new Uint8Array(32)
    for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
    return out
  }
  const b64 = value.replace(/-/g, '+').replace(/_/g, '/')
  const bin = atob(b64)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

/** Normalises certificate hashes into what `new WebTransport(url, {serverCertificateHashes})` takes. */
export function certificateHashOptions(
  hashes: CertificateHash[],
): Array<{ algorithm: string; value: Uint8Array | BufferSource }> {
  return hashes.map((h) => {
    if (typeof h === 'string') return { algorithm: 'sha-256', value: decodeHash(h) }
    const v = h.value
    const value =
      typeof v === 'string'
        ? decodeHash(v)
        : v instanceof ArrayBuffer || ArrayBuffer.isView(v)
          ? (v as BufferSource)
          : Uint8Array.from(v as ArrayLike<number>)
    return { algorithm: h.algorithm ?? 'sha-256', value }
  })
}

/* Minimal structural types for the WebTransport API (not in TypeScript's DOM lib everywhere). */
interface WtWriter {
  write(chunk: Uint8Array): Promise<void>
  close(): Promise<void>
  releaseLock(): void
}
interface WtReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>
  cancel(reason?: unknown): Promise<void>
}
interface WtStream {
  readable: { getReader(): WtReader }
  writable: { getWriter(): WtWriter }
}
interface WtDatagrams {
  readable: { getReader(): WtReader }
  writable?: { getWriter(): WtWriter }
  createWritable?: () => { getWriter(): WtWriter }
  maxDatagramSize?: number
}
export interface WebTransportLike {
  ready: Promise<unknown>
  closed: Promise<unknown>
  datagrams: WtDatagrams
  createBidirectionalStream(): Promise<WtStream>
  close(info?: { closeCode?: number; reason?: string }): void
}
export type WebTransportConstructor = new (
  url: string,
  options?: { serverCertificateHashes?: Array<{ algorithm: string; value: BufferSource }> },
) => WebTransportLike

/** Volatile relays above this many encoded bytes go on the control stream (Chrome drops datagrams > 1211 bytes). */
export const MAX_DATAGRAM_BYTES = 1100

/** Opens a WebTransport session and its control stream. */
export function openWebTransport(
  url: string,
  hashes: CertificateHash[] | undefined,
  Ctor: WebTransportConstructor,
  timeoutMs: number,
): Opening {
  let wt: WebTransportLike | null = null
  let cancelled = false
  let opened = false
  let rejectFn: (e: Error) => void = () => {}
  const promise = new Promise<Transport>((resolve, reject) => {
    rejectFn = reject
    const timer = setTimeout(() => {
      reject(timeoutError(timeoutMs, 'WebTransport'))
      try {
        wt?.close()
      } catch {
        // ignore
      }
    }, timeoutMs)
    const start = async () => {
      const options =
        hashes && hashes.length > 0
          ? {
              serverCertificateHashes: certificateHashOptions(hashes) as Array<{
                algorithm: string
                value: BufferSource
              }>,
            }
          : undefined
      const session = new Ctor(url, options)
      wt = session
      session.closed.catch(() => {})
      await session.ready
      const stream = await session.createBidirectionalStream()
      return new WebTransportTransport(session, stream)
    }
    start().then(
      (t) => {
        clearTimeout(timer)
        opened = true
        if (cancelled) {
          t.close()
          return
        }
        resolve(t)
      },
      (e: unknown) => {
        clearTimeout(timer)
        try {
          wt?.close()
        } catch {
          // ignore
        }
        reject(e instanceof Error ? e : new Error(String(e)))
      },
    )
  })
  return {
    promise,
    cancel() {
      if (cancelled) return
      cancelled = true
      rejectFn(new Error('cancelled'))
      if (!opened) {
        // Abandon the handshake now rather than at its timeout.
        try {
          wt?.close()
        } catch {
          // ignore
        }
      }
    },
  }
}

class WebTransportTransport implements Transport {
  readonly kind = 'webtransport' as const
  readonly stats = newStats()
  onmessage: ((message: MessageFromDb) => void) | null = null
  onclose: ((reason: string) => void) | null = null
  private closed = false
  private readonly writer: WtWriter
  private readonly datagramWriter: WtWriter | null

  constructor(
    private readonly session: WebTransportLike,
    stream: WtStream,
  ) {
    this.writer = stream.writable.getWriter()
    // Chrome has `datagrams.writable`, Safari `createWritable()`.
    const d = session.datagrams
    let dw: WtWriter | null = null
    try {
      dw = d.writable ? d.writable.getWriter() : d.createWritable ? d.createWritable().getWriter() : null
    } catch {
      dw = null
    }
    this.datagramWriter = dw
    void this.readControl(stream.readable.getReader())
    void this.readDatagrams(d.readable.getReader())
    session.closed.then(
      () => this.finish('WebTransport session closed'),
      (e: unknown) => this.finish(`WebTransport session failed: ${String(e)}`),
    )
  }

  private deliver(bytes: Uint8Array, datagram: boolean) {
    let message: MessageFromDb
    try {
      message = decodeServer(bytes, cborValues)
    } catch {
      return
    }
    if (datagram) this.stats.datagramsReceived++
    else this.stats.received++
    this.onmessage?.(message)
  }

  private async readControl(reader: WtReader) {
    const frames = new FrameReader()
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        if (value) for (const f of frames.push(value)) this.deliver(f, false)
      }
      this.finish('control stream ended')
    } catch (e) {
      this.finish(`control stream failed: ${String(e)}`)
    }
  }

  private async readDatagrams(reader: WtReader) {
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) return
        if (value) this.deliver(value, true)
      }
    } catch {
      // the session is closing
    }
  }

  private maxDatagram(): number {
    const max = this.session.datagrams.maxDatagramSize
    return typeof max === 'number' && max > 0 ? Math.min(max, MAX_DATAGRAM_BYTES) : MAX_DATAGRAM_BYTES
  }

  send(message: MessageToDb): void {
    if (this.closed) throw new Error('WebTransport session is closed')
    const bytes = encodeClient(message, cborValues)
    if (
      message.type === 'push' &&
      message.volatile === true &&
      this.datagramWriter &&
      bytes.length <= this.maxDatagram()
    ) {
      this.datagramWriter.write(bytes).catch(() => {})
      this.stats.datagramsSent++
      return
    }
    this.stats.sent++
    this.writer.write(frame(bytes)).catch((e: unknown) => this.finish(`control stream write failed: ${String(e)}`))
  }

  private finish(reason: string) {
    if (this.closed) return
    this.closed = true
    try {
      this.session.close({ closeCode: 0, reason: '' })
    } catch {
      // ignore
    }
    this.onclose?.(reason)
  }

  close(): void {
    if (this.closed) return
    // An application-level goodbye: h3-webtransport does not tell the server when a session closes.
    this.writer
      .write(frame(encodeClient({ type: 'goodbye' }, cborValues)))
      .catch(() => {})
      .finally(() => this.finish('closed by the client'))
    // Do not wait for the write to tell the owner.
    const cb = this.onclose
    this.onclose = null
    cb?.('closed by the client')
  }
}
