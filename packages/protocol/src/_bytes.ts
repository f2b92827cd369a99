// Internal byte helpers: a strict reader and a writer for the package's binary layouts.
// All multi-byte integers are big-endian (network order).
import { DecodeError } from "./errors.js";

/** Concatenates byte arrays into a new array. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Compares two byte arrays in constant time for equal lengths (lengths are not secret). */
export function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** True when every byte is zero, in time independent of the contents. */
export function isAllZero(a: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]!;
  return acc === 0;
}

/** Overwrites key material with zeros. JavaScript cannot promise no copy survives elsewhere. */
export function wipe(...arrays: (Uint8Array | undefined)[]): void {
  for (const a of arrays) a?.fill(0);
}

export const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex");
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new DecodeError("invalid hex string");
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

/** Checks an argument's type and length, naming it in the error (noble style). */
export function checkBytes(name: string, value: unknown, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name}: expected Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`${name}: expected ${length} bytes, got ${value.length}`);
  }
  return value;
}

/** Appends big-endian fields to a growing buffer. */
export class Writer {
  private buf = new Uint8Array(64);
  private len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`u8 out of range: ${v}`);
    this.ensure(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`u16 out of range: ${v}`);
    this.ensure(2);
    this.buf[this.len++] = v >>> 8;
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 out of range: ${v}`);
    this.ensure(4);
    new DataView(this.buf.buffer).setUint32(this.len, v);
    this.len += 4;
    return this;
  }

  /** Unsigned 64-bit; JavaScript numbers carry it exactly up to 2^53 - 1. */
  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of range: ${v}`);
    this.ensure(8);
    new DataView(this.buf.buffer).setBigUint64(this.len, BigInt(v));
    this.len += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** A byte string prefixed by its length as u8, u16 or u32. */
  varBytes(b: Uint8Array, prefix: 1 | 2 | 4): this {
    if (prefix === 1) {
      if (b.length > 0xff) throw new RangeError(`field too long for a u8 length: ${b.length}`);
      this.u8(b.length);
    } else if (prefix === 2) this.u16(b.length);
    else this.u32(b.length);
    return this.bytes(b);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Reads big-endian fields; every read checks bounds and names the field in its error. */
export class Reader {
  private offset = 0;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  private need(n: number, field: string): void {
    if (this.remaining < n) {
      throw new DecodeError(`${this.what}: truncated at ${field} (need ${n} bytes, have ${this.remaining})`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.offset++]!;
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.view.getUint16(this.offset);
    this.offset += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }

  u64(field: string): number {
    this.need(8, field);
    const v = this.view.getBigUint64(this.offset);
    this.offset += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError(`${this.what}: ${field} is out of range`);
    return Number(v);
  }

  /** A copy of the next `n` bytes (copies, so callers may wipe or keep them independently). */
  bytes(n: number, field: string): Uint8Array {
    this.need(n, field);
    // Not slice(): on a view of a Node Buffer's memory (what a WebSocket message is) V8 copies
    // slice() byte by byte, ten times slower than set() for a 64 KiB file chunk.
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.offset, this.offset + n));
    this.offset += n;
    return out;
  }

  varBytes(prefix: 1 | 2 | 4, field: string, max: number): Uint8Array {
    const n = prefix === 1 ? this.u8(field) : prefix === 2 ? this.u16(field) : this.u32(field);
    if (n > max) throw new DecodeError(`${this.what}: ${field} is ${n} bytes, more than the limit of ${max}`);
    return this.bytes(n, field);
  }

  /** Strict UTF-8 (no replacement characters), length-prefixed. */
  string(prefix: 1 | 2, field: string, max: number): string {
    return this.decodeUtf8(this.varBytes(prefix, field, max), field);
  }

  /** Strict UTF-8 with a u32 length prefix. */
  string4(field: string, max: number): string {
    return this.decodeUtf8(this.varBytes(4, field, max), field);
  }

  private decodeUtf8(raw: Uint8Array, field: string): string {
    try {
      return strictUtf8.decode(raw);
    } catch {
      throw new DecodeError(`${this.what}: ${field} is not valid UTF-8`);
    }
  }

  rest(): Uint8Array {
    return this.bytes(this.remaining, "rest");
  }

  /** Fails if anything is left: layouts are exact, trailing bytes are malformed input. */
  end(): void {
    if (this.remaining !== 0)
      throw new DecodeError(`${this.what}: ${this.remaining} unexpected trailing bytes`);
  }
}
