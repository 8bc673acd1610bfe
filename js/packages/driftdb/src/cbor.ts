import { Decoder } from 'cbor-x'
import { ByteBuffer } from './bytes.js'

import type { ValueCodec } from './postcard.js'

// Decoding (cbor-x): plain CBOR, no record extension, maps as objects. Tag 64 (Uint8Array) is understood.
const codec = new Decoder({
  useRecords: false,
  mapsAsObjects: true,
  // 64-bit integers (seqs, large values) as numbers, not BigInt.
  int64AsNumber: true,
} as ConstructorParameters<typeof Decoder>[0])

/** Turns Node's `Buffer` (a Uint8Array subclass cbor-x returns) into plain `Uint8Array`s, recursively. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) {
    return value.constructor === Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = normalize(value[i])
    return value
  }
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const record = value as Record<string, unknown>
    for (const k of Object.keys(record)) record[k] = normalize(record[k])
  }
  return value
}

/** The CBOR writer: heads in their shortest form, on a shared growable buffer. */
class Out extends ByteBuffer {
  constructor() {
    super(256)
  }

  /** A major type with its argument, in the shortest form. */
  head(major: number, n: number): void {
    const m = major << 5
    if (n < 24) {
      this.byte(m | n)
    } else if (n < 0x100) {
      this.byte(m | 24).byte(n)
    } else if (n < 0x10000) {
      this.byte(m | 25).fixed(2, (view, at) => view.setUint16(at, n))
    } else if (n < 0x100000000) {
      this.byte(m | 26).fixed(4, (view, at) => view.setUint32(at, n))
    } else {
      this.byte(m | 27).fixed(8, (view, at) => view.setBigUint64(at, BigInt(n)))
    }
  }
}

const f32 = new Float32Array(1)

/** The IEEE half-precision bits of `v` if it converts exactly, else null. */
function toHalf(v: number): number | null {
  if (Number.isNaN(v)) return 0x7e00
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0
  const a = Math.abs(v)
  if (a === Infinity) return sign | 0x7c00
  if (a === 0) return sign
  // Subnormal halves: multiples of 2^-24 below 2^-14.
  if (a < 2 ** -14) {
    const m = a / 2 ** -24
    return Number.isInteger(m) ? sign | m : null
  }
  const e = Math.floor(Math.log2(a))
  if (e > 15) return null
  const mant = a / 2 ** e - 1 // in [0, 1)
  const m = mant * 1024
  if (!Number.isInteger(m) || m >= 1024) return null
  return sign | ((e + 15) << 10) | m
}

/** Writes a float in the shortest of half, single and double precision that holds it exactly (as ciborium does). */
function writeFloat(out: Out, v: number): void {
  const half = toHalf(v)
  if (half !== null) {
    out.byte(0xf9).fixed(2, (view, at) => view.setUint16(at, half))
    return
  }
  f32[0] = v
  if (f32[0] === v) {
    out.byte(0xfa).fixed(4, (view, at) => view.setFloat32(at, v))
    return
  }
  out.byte(0xfb).fixed(8, (view, at) => view.setFloat64(at, v))
}

const textEncoder = new TextEncoder()

function write(out: Out, value: unknown, depth: number): void {
  if (depth > 512) throw new Error('value nested too deeply')
  switch (typeof value) {
    case 'undefined':
      out.byte(0xf7)
      return
    case 'boolean':
      out.byte(value ? 0xf5 : 0xf4)
      return
    case 'number':
      if (Number.isInteger(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER) {
        if (value >= 0) out.head(0, value)
        else out.head(1, -1 - value)
      } else {
        writeFloat(out, value)
      }
      return
    case 'bigint':
      if (value >= 0n && value < 2n ** 64n) {
        out.byte(0x1b).fixed(8, (view, at) => view.setBigUint64(at, value))
        return
      }
      if (value < 0n && value >= -(2n ** 64n)) {
        out.byte(0x3b).fixed(8, (view, at) => view.setBigUint64(at, -1n - value))
        return
      }
      throw new Error('bigint out of the 64-bit range')
    case 'string': {
      const b = textEncoder.encode(value)
      out.head(3, b.length)
      out.raw(b)
      return
    }
    case 'object': {
      if (value === null) {
        out.byte(0xf6)
        return
      }
      if (ArrayBuffer.isView(value)) {
        const b = new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
        out.head(2, b.length)
        out.raw(b)
        return
      }
      if (value instanceof ArrayBuffer) {
        out.head(2, value.byteLength)
        out.raw(new Uint8Array(value))
        return
      }
      if (Array.isArray(value)) {
        out.head(4, value.length)
        for (const item of value) write(out, item, depth + 1)
        return
      }
      if (value instanceof Map) {
        out.head(5, value.size)
        for (const [k, v] of value) {
          write(out, k, depth + 1)
          write(out, v, depth + 1)
        }
        return
      }
      const withJson = value as { toJSON?: () => unknown }
      if (typeof withJson.toJSON === 'function') {
        write(out, withJson.toJSON(), depth + 1)
        return
      }
      // Like JSON: undefined and function members are left out.
      const entries = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== 'function')
      out.head(5, entries.length)
      for (const [k, v] of entries) {
        write(out, k, depth + 1)
        write(out, v, depth + 1)
      }
      return
    }
    default:
      out.byte(0xf6) // functions and symbols: null, as JSON does in arrays
  }
}

/**
 * Encodes a value as CBOR the way the server holds it: shortest integer and float forms, definite lengths, map keys
 * in insertion order, byte strings (any typed array) untagged.
 */
export function encodeCbor(value: unknown): Uint8Array {
  const out = new Out()
  write(out, value, 0)
  return out.finish()
}

/** Decodes CBOR bytes; byte strings come back as `Uint8Array`. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return normalize(codec.decode(bytes))
}

/** The value codec of the WebTransport envelope. */
export const cborValues: ValueCodec = { encode: encodeCbor, decode: decodeCbor }
