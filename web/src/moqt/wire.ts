/**
 * MoQT wire primitives: QUIC variable-length integers (RFC 9000 section 16), a
 * bounded synchronous {@link Reader}, a growable {@link Writer}, and an
 * asynchronous {@link StreamReader} over a WebTransport ReadableStream.
 *
 * Numbers are JavaScript numbers: varints up to 2^53-1 are exact; larger ones
 * (e.g. PUBLISH_DONE's "unknown" stream count 2^62-1) decode approximately.
 */

/** The input ended before the field did (sync decoders: the message is not complete). */
export class NeedMoreData extends Error {
  constructor() {
    super("need more data");
    this.name = "NeedMoreData";
  }
}

/** The peer sent something the draft forbids: the session closes with PROTOCOL_VIOLATION. */
export class ProtocolViolation extends Error {
  readonly code: number;
  constructor(message: string, code = 0x3) {
    super(message);
    this.name = "ProtocolViolation";
    this.code = code;
  }
}

/** Largest varint value (2^62 - 1). */
export const MAX_VARINT = 2 ** 62 - 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array, what = "text"): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new ProtocolViolation(`${what} is not UTF-8`);
  }
}

/** Size in bytes of the varint encoding of `value`. */
export function varintSize(value: number): number {
  if (value < 0x40) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x40000000) return 4;
  return 8;
}

/** The varint encoding of `value` (a non-negative integer up to 2^62-1). */
export function encodeVarint(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > MAX_VARINT) {
    throw new RangeError(`${value} is not a varint`);
  }
  const size = varintSize(value);
  const out = new Uint8Array(size);
  if (size === 1) {
    out[0] = value;
  } else if (size === 2) {
    out[0] = 0x40 | (value >> 8);
    out[1] = value & 0xff;
  } else if (size === 4) {
    const v = new DataView(out.buffer);
    v.setUint32(0, (0x80000000 | value) >>> 0);
  } else {
    const v = new DataView(out.buffer);
    const hi = Math.floor(value / 2 ** 32);
    v.setUint32(0, (0xc0000000 | hi) >>> 0);
    v.setUint32(4, value % 2 ** 32);
  }
  return out;
}

/** A bounded cursor over bytes; every pull throws {@link NeedMoreData} past the end. */
export class Reader {
  private readonly view: DataView;
  pos: number;
  readonly end: number;

  constructor(
    readonly data: Uint8Array,
    start = 0,
    end = data.length,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  eof(): boolean {
    return this.pos >= this.end;
  }

  private need(n: number): void {
    if (this.end - this.pos < n) throw new NeedMoreData();
  }

  uint8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }

  uint16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  varint(): number {
    this.need(1);
    const first = this.view.getUint8(this.pos);
    const size = 1 << (first >> 6);
    this.need(size);
    let value: number;
    if (size === 1) value = first & 0x3f;
    else if (size === 2) value = this.view.getUint16(this.pos) & 0x3fff;
    else if (size === 4) value = this.view.getUint32(this.pos) & 0x3fffffff;
    else value = (this.view.getUint32(this.pos) & 0x3fffffff) * 2 ** 32 + this.view.getUint32(this.pos + 4);
    this.pos += size;
    return value;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** `Length (i)` then that many bytes. */
  lengthPrefixed(max = Number.MAX_SAFE_INTEGER, what = "field"): Uint8Array {
    const n = this.varint();
    if (n > max) throw new ProtocolViolation(`${what} of ${n} bytes (max ${max})`);
    return this.bytes(n);
  }

  /** A sub-reader over the next `n` bytes (this reader skips them). */
  sub(n: number): Reader {
    this.need(n);
    const r = new Reader(this.data, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }

  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }
}

/** Appends fields to a growable buffer. */
export class Writer {
  private buf: Uint8Array;
  private len = 0;

  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  get length(): number {
    return this.len;
  }

  uint8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`${v} is not a uint8`);
    this.reserve(1);
    this.buf[this.len++] = v;
    return this;
  }

  uint16(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${v} is not a uint16`);
    this.reserve(2);
    this.buf[this.len++] = v >> 8;
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  varint(v: number): this {
    return this.bytes(encodeVarint(v));
  }

  bytes(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  lengthPrefixed(b: Uint8Array): this {
    return this.varint(b.length).bytes(b);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Concatenate byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Reads fields from a ReadableStream of byte chunks, waiting for data as needed.
 * Every read rejects with {@link NeedMoreData} when the stream ends first
 * (use {@link StreamReader.atEnd} between objects to tell a clean FIN apart).
 */
export class StreamReader {
  private chunks: Uint8Array[] = [];
  private offset = 0; // into chunks[0]
  private buffered = 0;
  private done = false;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.done) return false;
      const { value, done } = await this.reader.read();
      if (done) {
        this.done = true;
        return this.buffered >= n;
      }
      if (value && value.length) {
        this.chunks.push(value);
        this.buffered += value.length;
      }
    }
    return true;
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      this.buffered -= n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      return out;
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const chunk = this.chunks[0] as Uint8Array;
      const k = Math.min(n - at, chunk.length - this.offset);
      out.set(chunk.subarray(this.offset, this.offset + k), at);
      at += k;
      this.offset += k;
      if (this.offset === chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    this.buffered -= n;
    return out;
  }

  /** True when the stream ended cleanly with nothing left to read. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  async bytes(n: number): Promise<Uint8Array> {
    if (n === 0) return new Uint8Array(0);
    if (!(await this.fill(n))) throw new NeedMoreData();
    return this.take(n);
  }

  async uint8(): Promise<number> {
    return (await this.bytes(1))[0] as number;
  }

  async uint16(): Promise<number> {
    const b = await this.bytes(2);
    return ((b[0] as number) << 8) | (b[1] as number);
  }

  async varint(): Promise<number> {
    if (!(await this.fill(1))) throw new NeedMoreData();
    const chunk = this.chunks[0] as Uint8Array;
    const size = 1 << ((chunk[this.offset] as number) >> 6);
    return new Reader(await this.bytes(size)).varint();
  }

  async cancel(reason?: unknown): Promise<void> {
    try {
      await this.reader.cancel(reason);
    } catch {
      // already closed or errored
    }
  }
}
