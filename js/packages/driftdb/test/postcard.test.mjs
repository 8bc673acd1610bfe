// The postcard envelope against the Rust golden vectors (tests/golden/postcard.json) when present, and against
// vectors derived by hand from src/protocol/postcard.rs otherwise.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { postcard, encodeCbor, decodeCbor } from './helpers.mjs'

const values = { encode: encodeCbor, decode: decodeCbor }
const hex = (u8) => Buffer.from(u8).toString('hex')
const unhex = (h) => new Uint8Array(Buffer.from(h, 'hex'))

test('varints: LEB128 edges up to 2^53-1', () => {
  const cases = [
    [0, '00'],
    [1, '01'],
    [127, '7f'],
    [128, '8001'],
    [300, 'ac02'],
    [16384, '808001'],
    [2 ** 32, '8080808010'],
    [Number.MAX_SAFE_INTEGER, 'ffffffffffffff0f'],
  ]
  for (const [n, h] of cases) {
    assert.equal(hex(new postcard.Writer().varint(n).finish()), h, `encode ${n}`)
    assert.equal(new postcard.Reader(unhex(h)).varint(), n, `decode ${h}`)
  }
  assert.throws(() => new postcard.Writer().varint(-1))
  assert.throws(() => new postcard.Reader(unhex('80')).varint(), /end of input/)
})

// Hand-derived from the Rust enum declarations: variant index, then fields in order; CBOR "hi" = 62 68 69.
const CLIENT_VECTORS = [
  [
    { type: 'push', key: 'k', value: 'hi', action: { type: 'compact', seq: 9 }, volatile: false },
    '00016b0362686903' + '09' + '00',
  ],
  [{ type: 'push', key: 'k', value: 'hi', action: { type: 'relay' }, volatile: true }, '00016b0362686900' + '01'],
  [{ type: 'push', key: 'k', value: 'hi', action: { type: 'append' } }, '00016b0362686901' + '00'],
  [{ type: 'push', key: '', value: 'hi', action: { type: 'replace' } }, '0000036268690200'],
  [{ type: 'get', key: '', seq: null }, '010000'],
  [{ type: 'get', key: 'k', seq: 300 }, '01016b01ac02'],
  [{ type: 'get', key: 'k' }, '01016b0100'],
  [{ type: 'unsubscribe', key: 'k' }, '02016b'],
  [{ type: 'ping', nonce: 1 }, '030101'],
  [{ type: 'ping' }, '0300'],
  [{ type: 'goodbye' }, '04'],
]

test('client messages encode to the hand-derived vectors and decode back', () => {
  for (const [message, h] of CLIENT_VECTORS) {
    const bytes = postcard.encodeClient(message, values)
    assert.equal(hex(bytes), h, JSON.stringify(message))
    const back = postcard.decodeClient(bytes, values)
    const expected = { ...message }
    if (expected.type === 'push') expected.volatile = message.volatile === true
    if (expected.type === 'get' && expected.seq === undefined) expected.seq = 0
    assert.deepEqual(back, expected)
  }
})

const SERVER_VECTORS = [
  [{ type: 'push', key: 'k', value: 'hi', seq: 5 }, '00016b0362686905' + '00'],
  [{ type: 'push', key: 'k', value: 'hi', seq: 5, volatile: true }, '00016b0362686905' + '01'],
  [
    {
      type: 'init',
      key: 'k',
      data: [
        { value: 'hi', seq: 1 },
        { value: new Uint8Array([1, 2]), seq: 200 },
      ],
      epoch: 'e1',
    },
    '01016b02' + '0362686901' + '03420102c801' + '026531',
  ],
  [{ type: 'init', key: 'k', data: [], epoch: '' }, '01016b0000'],
  [{ type: 'stream_size', key: 'k', size: 31 }, '02016b1f'],
  [{ type: 'pong', nonce: null }, '0300'],
  [{ type: 'pong', nonce: 7 }, '030107'],
  [{ type: 'error', message: 'bad' }, '0403626164'],
]

test('server messages decode from the hand-derived vectors and encode back', () => {
  for (const [message, h] of SERVER_VECTORS) {
    assert.deepEqual(postcard.decodeServer(unhex(h), values), message, h)
    assert.equal(hex(postcard.encodeServer(message, values)), h, JSON.stringify(message))
  }
})

test('byte strings in values round-trip as plain Uint8Array', () => {
  const bytes = postcard.encodeClient(
    {
      type: 'push',
      key: 'b',
      value: { data: new Uint8Array([0, 255]), n: [1, 2.5, null] },
      action: { type: 'append' },
    },
    values,
  )
  const back = postcard.decodeClient(bytes, values)
  assert.equal(back.value.data.constructor, Uint8Array)
  assert.deepEqual(back.value, { data: new Uint8Array([0, 255]), n: [1, 2.5, null] })
})

test('malformed input is rejected', () => {
  const bad = ['', '2a', '0400', '05', '0001', '01016b02', '0302', '00016b03626869', '00016bff']
  for (const h of bad) {
    assert.throws(() => postcard.decodeClient(unhex(h), values), postcard.PostcardError, `client ${h}`)
  }
  assert.throws(() => postcard.decodeServer(unhex('0403ffffff'), values), postcard.PostcardError, 'bad UTF-8')
  assert.throws(() => postcard.decodeServer(unhex('0300' + '00'), values), /trailing/)
})

test('control-stream framing: varint length prefix, split and coalesced chunks', () => {
  const a = postcard.encodeServer({ type: 'pong', nonce: 1 }, values)
  const big = postcard.encodeServer({ type: 'error', message: 'x'.repeat(300) }, values)
  const stream = new Uint8Array([...postcard.frame(a), ...postcard.frame(big), ...postcard.frame(a)])
  assert.equal(hex(postcard.frame(a)), '03' + hex(a))
  assert.equal(hex(postcard.frame(big).subarray(0, 2)), hex(new postcard.Writer().varint(big.length).finish()))
  for (const size of [1, 2, 3, 7, stream.length]) {
    const reader = new postcard.FrameReader()
    const out = []
    for (let i = 0; i < stream.length; i += size) out.push(...reader.push(stream.slice(i, i + size)))
    assert.deepEqual(out.map(hex), [a, big, a].map(hex), `chunk size ${size}`)
  }
  assert.throws(() => new postcard.FrameReader(10).push(postcard.frame(big)), /exceeds/)
})

// The golden vectors shared with the Rust tests (tests/golden/postcard.json, format in tests/golden/README.md).
const GOLDEN = fileURLToPath(new URL('../../../../tests/golden/postcard.json', import.meta.url))
const golden = JSON.parse(readFileSync(GOLDEN, 'utf8'))

/** The message as the decoder returns it: JSON defaults made explicit. */
function decodedForm(message) {
  const m = structuredClone(message)
  if (m.type === 'push' && m.volatile === undefined && message.action) m.volatile = false
  if (m.type === 'get' && m.seq === undefined) m.seq = 0
  return m
}

test('golden vectors: the file holds client and server vectors', () => {
  assert.ok(golden.filter((c) => c.direction === 'client').length >= 10)
  assert.ok(golden.filter((c) => c.direction === 'server').length >= 6)
})

for (const c of golden) {
  test(`golden ${c.direction} vector ${c.name}`, () => {
    assert.ok(c.postcard_hex, 'vector has bytes')
    const bytes = unhex(c.postcard_hex)
    if (c.direction === 'client') {
      assert.equal(hex(postcard.encodeClient(c.message, values)), c.postcard_hex, 'encode')
      assert.deepEqual(postcard.decodeClient(bytes, values), decodedForm(c.message), 'decode')
    } else {
      assert.deepEqual(postcard.decodeServer(bytes, values), c.message, 'decode')
      assert.equal(hex(postcard.encodeServer(c.message, values)), c.postcard_hex, 'encode')
    }
    // Values: our CBOR encoding is the server's canonical one.
    if (typeof c.value_cbor_hex === 'string') {
      assert.equal(hex(encodeCbor(c.message.value)), c.value_cbor_hex, 'value CBOR')
    } else if (Array.isArray(c.value_cbor_hex)) {
      assert.deepEqual(
        c.message.data.map((e) => hex(encodeCbor(e.value))),
        c.value_cbor_hex,
        'entry CBOR',
      )
    }
    // A datagram carries these bytes; on the control stream they are length-prefixed.
    const frames = new postcard.FrameReader().push(postcard.frame(bytes))
    assert.deepEqual(frames.map(hex), [c.postcard_hex])
  })
}
