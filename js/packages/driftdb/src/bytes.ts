/** A growable byte buffer: what the CBOR and postcard encoders write into. */
export class ByteBuffer {
  private buf: Uint8Array
  private view: DataView
  private len = 0

  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity)
    this.view = new DataView(this.buf.buffer)
  }

  /** Makes room for `n` more bytes, doubling the buffer as needed. */
  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.len + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.len))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  /** Appends one byte. */
  byte(b: number): this {
    this.reserve(1)
    this.buf[this.len++] = b
    return this
  }

  /** Appends bytes as they are. */
  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length)
    this.buf.set(bytes, this.len)
    this.len += bytes.length
    return this
  }

  /** Appends a `width`-byte field that `set` writes through a DataView at the given offset (big-endian numbers). */
  fixed(width: number, set: (view: DataView, offset: number) => void): this {
    this.reserve(width)
    set(this.view, this.len)
    this.len += width
    return this
  }

  /** A copy of what was written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len)
  }
}
