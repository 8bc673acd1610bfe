// Runs inside the browser page (served as a classic script): a minimal DriftDB WebTransport client written by hand,
// independent of the real JS client, so this test checks the server against PROTOCOL.md part C and the golden
// vectors, not against another implementation of ours.
//
// Wire format: control-stream frames are an unsigned LEB128 length then a postcard message; a datagram is one
// postcard message. Values travel as CBOR bytes (a small CBOR subset is enough for the test's values).

/* global WebTransport */
;(() => {
  const utf8 = new TextEncoder()
  const fromUtf8 = new TextDecoder()

  // --- postcard primitives -------------------------------------------------------------------------------------
  function varint(out, n) {
    while (n >= 0x80) {
      out.push((n % 0x80) | 0x80)
      n = Math.floor(n / 0x80)
    }
    out.push(n)
  }
  function bytes(out, b) {
    varint(out, b.length)
    for (const x of b) out.push(x)
  }
  const str = (out, s) => bytes(out, utf8.encode(s))

  class Reader {
    constructor(buf) {
      this.buf = buf
      this.at = 0
    }
    byte() {
      if (this.at >= this.buf.length) throw new Error('truncated message')
      return this.buf[this.at++]
    }
    varint() {
      let n = 0
      let scale = 1
      for (;;) {
        const b = this.byte()
        n += (b & 0x7f) * scale
        if (b < 0x80) return n
        scale *= 0x80
      }
    }
    bytes() {
      const len = this.varint()
      const out = this.buf.subarray(this.at, this.at + len)
      this.at += len
      return out
    }
    str() {
      return fromUtf8.decode(this.bytes())
    }
    option() {
      return this.byte() === 1 ? this.varint() : null
    }
  }

  // --- a CBOR subset: null, booleans, unsigned and negative integers, text, arrays, maps -------------------------
  function cborHead(out, major, n) {
    if (n < 24) out.push((major << 5) | n)
    else if (n < 0x100) out.push((major << 5) | 24, n)
    else if (n < 0x10000) out.push((major << 5) | 25, n >> 8, n & 0xff)
    else out.push((major << 5) | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
  }
  function cbor(value, out = []) {
    if (value === null) out.push(0xf6)
    else if (value === true) out.push(0xf5)
    else if (value === false) out.push(0xf4)
    else if (Number.isInteger(value)) value >= 0 ? cborHead(out, 0, value) : cborHead(out, 1, -1 - value)
    else if (typeof value === 'string') {
      const text = utf8.encode(value)
      cborHead(out, 3, text.length)
      out.push(...text)
    } else if (Array.isArray(value)) {
      cborHead(out, 4, value.length)
      for (const v of value) cbor(v, out)
    } else {
      const entries = Object.entries(value)
      cborHead(out, 5, entries.length)
      for (const [k, v] of entries) {
        cbor(k, out)
        cbor(v, out)
      }
    }
    return out
  }
  function uncbor(r) {
    const first = r.byte()
    const major = first >> 5
    const info = first & 0x1f
    let n = info
    if (info === 24) n = r.byte()
    else if (info === 25) n = r.byte() * 0x100 + r.byte()
    else if (info === 26) n = ((r.byte() * 0x100 + r.byte()) * 0x100 + r.byte()) * 0x100 + r.byte()
    else if (info > 26 && major !== 7) throw new Error(`unsupported CBOR head ${first}`)
    switch (major) {
      case 0:
        return n
      case 1:
        return -1 - n
      case 3: {
        const text = fromUtf8.decode(r.buf.subarray(r.at, r.at + n))
        r.at += n
        return text
      }
      case 4:
        return Array.from({ length: n }, () => uncbor(r))
      case 5: {
        const obj = {}
        for (let i = 0; i < n; i++) obj[uncbor(r)] = uncbor(r)
        return obj
      }
      case 7:
        return { 20: false, 21: true, 22: null }[info] ?? null
      default:
        throw new Error(`unsupported CBOR major type ${major}`)
    }
  }

  // --- DriftDB messages ------------------------------------------------------------------------------------------
  const ACTIONS = { relay: 0, append: 1, replace: 2, compact: 3 }
  function push(key, value, action = 'append', volatile = false, compactSeq = 0) {
    const out = [0]
    str(out, key)
    bytes(out, cbor(value))
    varint(out, ACTIONS[action])
    if (action === 'compact') varint(out, compactSeq)
    out.push(volatile ? 1 : 0)
    return new Uint8Array(out)
  }
  function get(key, seq) {
    const out = [1]
    str(out, key)
    if (seq === null) out.push(0)
    else {
      out.push(1)
      varint(out, seq)
    }
    return new Uint8Array(out)
  }
  function ping(nonce) {
    const out = [3]
    if (nonce === null) out.push(0)
    else {
      out.push(1)
      varint(out, nonce)
    }
    return new Uint8Array(out)
  }
  const goodbye = () => new Uint8Array([4])
  function auth(token) {
    const out = [5]
    str(out, token)
    return new Uint8Array(out)
  }

  function decodeServer(buf) {
    const r = new Reader(buf)
    const tag = r.byte()
    const value = () => uncbor(new Reader(r.bytes()))
    switch (tag) {
      case 0:
        return { type: 'push', key: r.str(), value: value(), seq: r.varint(), volatile: r.byte() === 1 }
      case 1: {
        const key = r.str()
        const data = Array.from({ length: r.varint() }, () => ({ value: value(), seq: r.varint() }))
        return { type: 'init', key, data, epoch: r.str() }
      }
      case 2:
        return { type: 'stream_size', key: r.str(), size: r.varint() }
      case 3:
        return { type: 'pong', nonce: r.option() }
      case 4:
        return { type: 'error', message: r.str() }
      default:
        throw new Error(`unknown server message ${tag}`)
    }
  }

  function frame(message) {
    const out = []
    varint(out, message.length)
    const framed = new Uint8Array(out.length + message.length)
    framed.set(out)
    framed.set(message, out.length)
    return framed
  }

  /** A queue of messages with a bounded wait for the next one matching a predicate. */
  class Inbox {
    items = []
    waiters = []
    put(item) {
      this.items.push(item)
      for (const wake of this.waiters.splice(0)) wake()
    }
    async take(matches, timeoutMs, what) {
      const deadline = performance.now() + timeoutMs
      for (;;) {
        const i = this.items.findIndex(matches)
        if (i >= 0) return this.items.splice(i, 1)[0]
        const left = deadline - performance.now()
        if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.items)}`)
        await new Promise((resolve) => {
          this.waiters.push(resolve)
          setTimeout(resolve, left)
        })
      }
    }
  }

  async function readFrames(readable, inbox) {
    const reader = readable.getReader()
    let buf = new Uint8Array(0)
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      const joined = new Uint8Array(buf.length + value.length)
      joined.set(buf)
      joined.set(value, buf.length)
      buf = joined
      for (;;) {
        const r = new Reader(buf)
        let len
        try {
          len = r.varint()
        } catch {
          break
        }
        if (buf.length < r.at + len) break
        inbox.put(decodeServer(buf.subarray(r.at, r.at + len)))
        buf = buf.slice(r.at + len)
      }
    }
  }

  async function readDatagrams(readable, inbox) {
    const reader = readable.getReader()
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      inbox.put(decodeServer(value))
    }
  }

  const fromHex = (hex) => new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)))

  /** Opens a session with the room info's URL and certificate hashes, and its control stream. */
  async function connect(info) {
    const started = performance.now()
    const transport = new WebTransport(info.webtransport_url, {
      serverCertificateHashes: info.certificate_hashes.map((h) => ({
        algorithm: h.algorithm,
        value: fromHex(h.value),
      })),
    })
    await transport.ready
    const control = await transport.createBidirectionalStream()
    const stream = new Inbox()
    const datagrams = new Inbox()
    readFrames(control.readable, stream).catch(() => {})
    readDatagrams(transport.datagrams.readable, datagrams).catch(() => {})
    const writer = control.writable.getWriter()
    // Chrome has `datagrams.writable`; Safari has `createWritable()` instead.
    const datagramWriter = (transport.datagrams.writable ?? transport.datagrams.createWritable()).getWriter()
    const client = {
      transport,
      stream,
      datagrams,
      send: (message) => writer.write(frame(message)),
      sendDatagram: (message) => datagramWriter.write(message),
      maxDatagramSize: transport.datagrams.maxDatagramSize,
    }
    // The session counts as set up once the server has answered on the control stream.
    await client.send(ping(1))
    await stream.take((m) => m.type === 'pong', 5000, 'the first pong')
    client.setupMs = performance.now() - started
    return client
  }

  window.drift = { connect, push, get, ping, goodbye, auth, cbor }
})()
