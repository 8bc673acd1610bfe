// DbConnection in CBOR mode (connect(url, true)) and its interplay with JSON connections.

import { assert, useServer, waitFor } from './helpers.mjs'

const serverTest = useServer()

/** Records the kind of every WebSocket frame `db` receives: 'binary' or 'text'. */
function recordFrameKinds(db) {
  const kinds = []
  db.connection.addEventListener('message', (event) => {
    kinds.push(event.data instanceof ArrayBuffer ? 'binary' : 'text')
  })
  return kinds
}

/** Waits until `received` (from scope.subscribe) holds `count` values and returns them. */
async function waitForValues(received, count, what) {
  await waitFor(() => received.values.length >= count, { what })
  assert.equal(received.values.length, count, `${what}: too many values`)
  return received.values.map((v) => v.value)
}

// Numbers a JSON and a CBOR client must agree on. cbor-web picks the smallest exact encoding for each
// (uint8/16/32/64 widths, negative ints, half/single/double floats), so these cover every width.
const NUMBERS = {
  maxSafe: 2 ** 53 - 1,
  minSafe: -(2 ** 53 - 1),
  tenth: 0.1,
  half: 1.5,
  negative: -2.5,
  single: 3.4028234663852886e38,
  huge: 1e300,
  tiny: 5e-324,
  zero: 0,
  widths: [23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -24, -25, -(2 ** 32) - 1],
}

serverTest('byte strings round-trip as bytes for CBOR clients and as number arrays for JSON', async (scope) => {
  const room = await scope.newRoom()
  const cborWriter = await scope.connect(room.socket_url, { cbor: true })
  const cborReader = await scope.connect(room.socket_url, { cbor: true })
  const jsonReader = await scope.connect(room.socket_url)
  const cborFrames = recordFrameKinds(cborReader)
  const jsonFrames = recordFrameKinds(jsonReader)

  const key = 'blob'
  const atCbor = await scope.subscribe(cborReader, key)
  const atJson = await scope.subscribe(jsonReader, key)

  const bytes = [0, 1, 2, 127, 128, 254, 255]
  // The reference client encodes a Uint8Array as a typed array (CBOR tag 64 around a byte string).
  cborWriter.send({
    type: 'push',
    key,
    action: { type: 'append' },
    value: { bytes: new Uint8Array(bytes), nested: [{ inner: new Uint8Array([42]) }], text: 'héllo ✓' },
  })

  const [cborValue] = await waitForValues(atCbor, 1, 'the push at the CBOR reader')
  assert.ok(cborValue.bytes instanceof Uint8Array, `bytes arrived as ${cborValue.bytes?.constructor?.name}`)
  assert.deepEqual(Array.from(cborValue.bytes), bytes)
  assert.ok(cborValue.nested[0].inner instanceof Uint8Array, 'nested bytes did not arrive as a Uint8Array')
  assert.deepEqual(Array.from(cborValue.nested[0].inner), [42])
  assert.equal(cborValue.text, 'héllo ✓')

  const [jsonValue] = await waitForValues(atJson, 1, 'the push at the JSON reader')
  assert.deepEqual(jsonValue, { bytes, nested: [{ inner: [42] }], text: 'héllo ✓' })

  // The stored entry keeps its bytes for a CBOR client that replays it later.
  const lateCbor = await scope.connect(room.socket_url, { cbor: true })
  const [replayed] = (await scope.subscribe(lateCbor, key)).values.map((v) => v.value)
  assert.ok(replayed?.bytes instanceof Uint8Array, 'replayed bytes did not arrive as a Uint8Array')
  assert.deepEqual(Array.from(replayed.bytes), bytes)

  // ?cbor=true means binary frames; no parameter means text frames.
  assert.ok(cborFrames.length > 0 && cborFrames.every((k) => k === 'binary'), `CBOR frames: ${cborFrames}`)
  assert.ok(jsonFrames.length > 0 && jsonFrames.every((k) => k === 'text'), `JSON frames: ${jsonFrames}`)
})

serverTest('numbers round-trip exactly between JSON and CBOR clients', async (scope) => {
  const room = await scope.newRoom()
  const cbor = await scope.connect(room.socket_url, { cbor: true })
  const json = await scope.connect(room.socket_url)
  const atCbor = await scope.subscribe(cbor, 'from-json')
  const atJson = await scope.subscribe(json, 'from-cbor')

  json.send({ type: 'push', key: 'from-json', action: { type: 'append' }, value: NUMBERS })
  cbor.send({ type: 'push', key: 'from-cbor', action: { type: 'append' }, value: NUMBERS })

  assert.deepEqual(await waitForValues(atCbor, 1, 'JSON -> CBOR numbers'), [NUMBERS])
  assert.deepEqual(await waitForValues(atJson, 1, 'CBOR -> JSON numbers'), [NUMBERS])
})
