import { Encoder } from 'cbor-x'

import type { ValueCodec } from './postcard.js'

// Plain CBOR: no record extension, byte strings untagged, minimal map headers, objects for maps.
const codec = new Encoder({
  useRecords: false,
  tagUint8Array: false,
  mapsAsObjects: true,
  variableMapSize: true,
  pack: false,
})

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

/** Encodes any value as CBOR bytes. */
export function encodeCbor(value: unknown): Uint8Array {
  const out = codec.encode(value) as Uint8Array
  return out.constructor === Uint8Array ? out : new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Decodes CBOR bytes; byte strings come back as `Uint8Array`. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return normalize(codec.decode(bytes))
}

/** The value codec of the WebTransport envelope. */
export const cborValues: ValueCodec = { encode: encodeCbor, decode: decodeCbor }
