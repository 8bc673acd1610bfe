/**
 * The WebTransport envelope: postcard encoding of the messages, mirroring `src/protocol/postcard.rs`.
 *
 * Postcard writes unsigned integers as LEB128 varints, enums as a varint variant index followed by the fields in
 * declaration order, `Option` as a 0/1 byte then the value, `bool` as one byte, strings and byte arrays as a varint
 * length then the bytes, sequences as a varint length then the elements. Values travel as their CBOR bytes.
 */
import { ByteBuffer } from './bytes.js'
import type { Action, MessageFromDb, MessageToDb } from './types.js'

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export class PostcardError extends Error {}

/** The postcard writer, on a shared growable buffer. */
export class Writer extends ByteBuffer {
  /** Unsigned LEB128 varint of a non-negative safe integer. */
  varint(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new PostcardError(`not a u64 varint: ${n}`)
    while (n >= 0x80) {
      this.byte((n % 0x80) | 0x80)
      n = Math.floor(n / 0x80)
    }
    return this.byte(n)
  }

  bool(b: boolean): this {
    return this.byte(b ? 1 : 0)
  }

  bytes(bytes: Uint8Array): this {
    return this.varint(bytes.length).raw(bytes)
  }

  string(s: string): this {
    return this.bytes(encoder.encode(s))
  }

  optionU64(n: number | null | undefined): this {
    if (n === null || n === undefined) return this.byte(0)
    return this.byte(1).varint(n)
  }
}

/** A cursor over bytes for decoding. */
export class Reader {
  pos = 0
  constructor(private readonly buf: Uint8Array) {}

  get remaining(): number {
    return this.buf.length - this.pos
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw new PostcardError('unexpected end of input')
    return this.buf[this.pos++]!
  }

  varint(): number {
    let result = 0
    let scale = 1
    for (let i = 0; i < 10; i++) {
      const b = this.byte()
      result += (b & 0x7f) * scale
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) throw new PostcardError('varint exceeds Number.MAX_SAFE_INTEGER')
        return result
      }
      scale *= 0x80
    }
    throw new PostcardError('varint too long')
  }

  bool(): boolean {
    const b = this.byte()
    if (b > 1) throw new PostcardError(`invalid bool byte ${b}`)
    return b === 1
  }

  bytes(): Uint8Array {
    const n = this.varint()
    if (n > this.remaining) throw new PostcardError('length exceeds input')
    const out = this.buf.slice(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  string(): string {
    try {
      return decoder.decode(this.bytes())
    } catch (e) {
      if (e instanceof PostcardError) throw e
      throw new PostcardError('invalid UTF-8')
    }
  }

  optionU64(): number | null {
    const tag = this.byte()
    if (tag === 0) return null
    if (tag === 1) return this.varint()
    throw new PostcardError(`invalid Option tag ${tag}`)
  }
}

/** Encodes and decodes values (CBOR bytes) for the postcard envelope. */
export interface ValueCodec {
  encode(value: unknown): Uint8Array
  decode(bytes: Uint8Array): unknown
}

// Variant indexes: the order of `WireClient`, `WireAction` and `WireServer` in src/protocol/postcard.rs.
const CLIENT = { push: 0, get: 1, unsubscribe: 2, ping: 3, goodbye: 4, auth: 5 } as const
const ACTION = { relay: 0, append: 1, replace: 2, compact: 3 } as const
const SERVER = ['push', 'init', 'stream_size', 'pong', 'error'] as const

function writeAction(w: Writer, action: Action): void {
  switch (action.type) {
    case 'relay':
    case 'append':
    case 'replace':
      w.varint(ACTION[action.type])
      return
    case 'compact':
      w.varint(ACTION.compact).varint(action.seq)
      return
    default:
      throw new PostcardError(`unknown action ${(action as { type: string }).type}`)
  }
}

function readAction(r: Reader): Action {
  const variant = r.varint()
  switch (variant) {
    case ACTION.relay:
      return { type: 'relay' }
    case ACTION.append:
      return { type: 'append' }
    case ACTION.replace:
      return { type: 'replace' }
    case ACTION.compact:
      return { type: 'compact', seq: r.varint() }
    default:
      throw new PostcardError(`unknown action variant ${variant}`)
  }
}

/** Encodes a client message, with its value already CBOR-encoded by `values`. */
export function encodeClient(message: MessageToDb, values: ValueCodec): Uint8Array {
  const w = new Writer()
  switch (message.type) {
    case 'push':
      w.varint(CLIENT.push).string(message.key).bytes(values.encode(message.value))
      writeAction(w, message.action)
      w.bool(message.volatile === true)
      break
    case 'get':
      // JSON semantics: seq omitted means 0, null means "subscribe without init".
      w.varint(CLIENT.get)
        .string(message.key)
        .optionU64(message.seq === undefined ? 0 : message.seq)
      break
    case 'unsubscribe':
      w.varint(CLIENT.unsubscribe).string(message.key)
      break
    case 'ping':
      w.varint(CLIENT.ping).optionU64(message.nonce)
      break
    case 'goodbye':
      w.varint(CLIENT.goodbye)
      break
    case 'auth':
      w.varint(CLIENT.auth).string(message.token)
      break
    default:
      throw new PostcardError(`unknown message type ${(message as { type: string }).type}`)
  }
  return w.finish()
}

/** Decodes a client message (used by tests and tools). */
export function decodeClient(bytes: Uint8Array, values: ValueCodec): MessageToDb {
  const r = new Reader(bytes)
  const variant = r.varint()
  let message: MessageToDb
  switch (variant) {
    case CLIENT.push: {
      const key = r.string()
      const value = values.decode(r.bytes())
      const action = readAction(r)
      const volatile = r.bool()
      message = { type: 'push', key, value, action, volatile }
      break
    }
    case CLIENT.get:
      message = { type: 'get', key: r.string(), seq: r.optionU64() }
      break
    case CLIENT.unsubscribe:
      message = { type: 'unsubscribe', key: r.string() }
      break
    case CLIENT.ping: {
      const nonce = r.optionU64()
      message = nonce === null ? { type: 'ping' } : { type: 'ping', nonce }
      break
    }
    case CLIENT.goodbye:
      message = { type: 'goodbye' }
      break
    case CLIENT.auth:
      message = { type: 'auth', token: r.string() }
      break
    default:
      throw new PostcardError(`unknown client message variant ${variant}`)
  }
  if (r.remaining !== 0) throw new PostcardError(`${r.remaining} trailing bytes after the message`)
  return message
}

/** Encodes a server message (used by tests and tools). */
export function encodeServer(message: MessageFromDb, values: ValueCodec): Uint8Array {
  const w = new Writer()
  switch (message.type) {
    case 'push':
      w.varint(0)
        .string(message.key)
        .bytes(values.encode(message.value))
        .varint(message.seq)
        .bool(message.volatile === true)
      break
    case 'init':
      w.varint(1).string(message.key).varint(message.data.length)
      for (const entry of message.data) w.bytes(values.encode(entry.value)).varint(entry.seq)
      w.string(message.epoch ?? '')
      break
    case 'stream_size':
      w.varint(2).string(message.key).varint(message.size)
      break
    case 'pong':
      w.varint(3).optionU64(message.nonce)
      break
    case 'error':
      w.varint(4).string(message.message)
      break
  }
  return w.finish()
}

/** Decodes a server message (a datagram, or a control-stream frame without its length prefix). */
export function decodeServer(bytes: Uint8Array, values: ValueCodec): MessageFromDb {
  const r = new Reader(bytes)
  const variant = r.varint()
  let message: MessageFromDb
  switch (SERVER[variant]) {
    case 'push': {
      const key = r.string()
      const value = values.decode(r.bytes())
      const seq = r.varint()
      const volatile = r.bool()
      message = volatile ? { type: 'push', key, value, seq, volatile } : { type: 'push', key, value, seq }
      break
    }
    case 'init': {
      const key = r.string()
      const n = r.varint()
      const data = []
      for (let i = 0; i < n; i++) {
        const value = values.decode(r.bytes())
        data.push({ value, seq: r.varint() })
      }
      message = { type: 'init', key, data, epoch: r.string() }
      break
    }
    case 'stream_size':
      message = { type: 'stream_size', key: r.string(), size: r.varint() }
      break
    case 'pong':
      message = { type: 'pong', nonce: r.optionU64() }
      break
    case 'error':
      message = { type: 'error', message: r.string() }
      break
    default:
      throw new PostcardError(`unknown server message variant ${variant}`)
  }
  if (r.remaining !== 0) throw new PostcardError(`${r.remaining} trailing bytes after the message`)
  return message
}

/** Prefixes a control-stream message with its unsigned-LEB128 byte length. */
export function frame(message: Uint8Array): Uint8Array {
  const w = new Writer()
  w.bytes(message)
  return w.finish()
}

/**
 * Splits a control stream into frames: push chunks in, get whole messages out.
 * Rejects frames larger than `maxFrame` bytes.
 */
export class FrameReader {
  private buf: Uint8Array = new Uint8Array(0)
  constructor(private readonly maxFrame = 64 * 1024 * 1024) {}

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.buf.length === 0) {
      this.buf = chunk
    } else {
      const next = new Uint8Array(this.buf.length + chunk.length)
      next.set(this.buf)
      next.set(chunk, this.buf.length)
      this.buf = next
    }
    const out: Uint8Array[] = []
    for (;;) {
      // Read the length varint, if complete.
      let len = 0
      let scale = 1
      let pos = 0
      let complete = false
      while (pos < this.buf.length && pos < 10) {
        const b = this.buf[pos++]!
        len += (b & 0x7f) * scale
        scale *= 0x80
        if ((b & 0x80) === 0) {
          complete = true
          break
        }
      }
      if (!complete) {
        if (pos >= 10) throw new PostcardError('frame length varint too long')
        break
      }
      if (len > this.maxFrame) throw new PostcardError(`frame of ${len} bytes exceeds the limit`)
      if (this.buf.length - pos < len) break
      out.push(this.buf.slice(pos, pos + len))
      this.buf = this.buf.subarray(pos + len)
    }
    if (this.buf.length === 0) this.buf = new Uint8Array(0)
    return out
  }
}
