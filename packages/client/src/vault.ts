// Encryption at rest. The passphrase is stretched with scrypt (parameters stored beside the
// data); purpose keys are separated with versioned HKDF labels; every record is sealed with
// XChaCha20-Poly1305 under a fresh random 24-byte nonce, bound to its table and row. A record's
// plaintext is padded to the wire's size buckets, so the file does not tell a message's length.
import { scrypt } from "@noble/hashes/scrypt.js";
import {
  bucketFor,
  hkdfSha256,
  hmacSha256,
  PADDING_BUCKETS,
  systemRandom,
  xopen,
  xseal,
} from "@parley/protocol";
import { ClientError } from "./errors.js";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** HKDF `info` labels of the store's keys; each is used for one purpose only. */
export const STORE_LABELS = {
  record: "parley/v1/client/store-record",
  index: "parley/v1/client/store-index",
  verifier: "parley/v1/client/store-verifier",
} as const;

/** Associated-data prefix of a sealed record: `prefix || table || 0x00 || row key`. */
const RECORD_AD = "parley/v1/client/record";
const VERIFIER_TEXT = "parley store v1";

/**
 * First byte of a padded record's plaintext: `0x01 || JSON || 0x80 || 0x00…`, padded (ISO/IEC
 * 7816-4, as the wire) to the smallest bucket that holds it, past the largest to a multiple of it.
 * Records sealed before padding are bare JSON, which never starts with this byte.
 */
const PADDED_RECORD = 0x01;
const LARGEST_BUCKET = PADDING_BUCKETS[PADDING_BUCKETS.length - 1]!;

/** `0x01 || json || 0x80`, zero-filled to its bucket. */
export function padRecord(json: Uint8Array): Uint8Array {
  const raw = 1 + json.length;
  const size = bucketFor(raw) ?? Math.ceil((raw + 1) / LARGEST_BUCKET) * LARGEST_BUCKET;
  const out = new Uint8Array(size);
  out[0] = PADDED_RECORD;
  out.set(json, 1);
  out[raw] = 0x80;
  return out;
}

/** The JSON of a record's plaintext: unpadded if it is padded, as it is if sealed before padding. */
export function unpadRecord(pt: Uint8Array): Uint8Array {
  if (pt[0] !== PADDED_RECORD) return pt;
  let end = pt.length - 1;
  while (end > 0 && pt[end] === 0) end--;
  if (end < 1 || pt[end] !== 0x80) throw new Error("record padding marker missing");
  return pt.subarray(1, end);
}

export interface KdfParams {
  readonly alg: "scrypt";
  readonly logN: number;
  readonly r: number;
  readonly p: number;
  /** hex, 16 bytes */
  readonly salt: string;
}

export const DEFAULT_LOG_N = 17;

export function newKdfParams(logN: number = DEFAULT_LOG_N): KdfParams {
  if (!Number.isInteger(logN) || logN < 10 || logN > 20) throw new RangeError("scrypt logN must be 10..20");
  return { alg: "scrypt", logN, r: 8, p: 1, salt: Buffer.from(systemRandom(16)).toString("hex") };
}

export function parseKdfParams(json: string): KdfParams {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new ClientError("INTERNAL", "the store's key-derivation parameters are unreadable");
  }
  const o = v as Partial<KdfParams>;
  if (
    o?.alg !== "scrypt" ||
    !Number.isInteger(o.logN) ||
    o.logN! < 10 ||
    o.logN! > 20 ||
    o.r !== 8 ||
    !Number.isInteger(o.p) ||
    o.p! < 1 ||
    o.p! > 4 ||
    typeof o.salt !== "string" ||
    !/^[0-9a-f]{32}$/.test(o.salt)
  ) {
    throw new ClientError("INTERNAL", "the store's key-derivation parameters are not supported");
  }
  return o as KdfParams;
}

/** The keys of one unlocked store. `wipe()` when done. */
export class Vault {
  private constructor(
    private readonly recordKey: Uint8Array,
    private readonly indexKey: Uint8Array,
    private readonly verifierKey: Uint8Array,
  ) {}

  /** Stretches the passphrase (NFC-normalized, so the same words typed anywhere unlock). */
  static derive(passphrase: string, params: KdfParams): Vault {
    const master = scrypt(enc.encode(passphrase.normalize("NFC")), Buffer.from(params.salt, "hex"), {
      N: 2 ** params.logN,
      r: params.r,
      p: params.p,
      dkLen: 32,
      maxmem: 2 ** 31,
    });
    const none = new Uint8Array(32);
    const key = (label: string) => hkdfSha256(master, none, enc.encode(label), 32);
    const vault = new Vault(key(STORE_LABELS.record), key(STORE_LABELS.index), key(STORE_LABELS.verifier));
    master.fill(0);
    return vault;
  }

  /** A value that proves the passphrase on the next unlock (an AEAD seal of a fixed text). */
  makeVerifier(): Uint8Array {
    const nonce = systemRandom(24);
    return concat(nonce, xseal(this.verifierKey, nonce, enc.encode(VERIFIER_TEXT), enc.encode(RECORD_AD)));
  }

  /** True when the verifier opens under this passphrase (the tag check is constant time). */
  checkVerifier(verifier: Uint8Array): boolean {
    if (verifier.length < 24 + 16) return false;
    try {
      xopen(this.verifierKey, verifier.subarray(0, 24), verifier.subarray(24), enc.encode(RECORD_AD));
      return true;
    } catch {
      return false;
    }
  }

  seal(table: string, rowKey: string, value: unknown): Buffer {
    const nonce = systemRandom(24);
    const ct = xseal(this.recordKey, nonce, padRecord(enc.encode(JSON.stringify(value))), ad(table, rowKey));
    return Buffer.from(concat(nonce, ct));
  }

  open<T>(table: string, rowKey: string, sealed: Uint8Array): T {
    try {
      const pt = xopen(this.recordKey, sealed.subarray(0, 24), sealed.subarray(24), ad(table, rowKey));
      return JSON.parse(dec.decode(unpadRecord(pt))) as T;
    } catch (e) {
      throw new ClientError("INTERNAL", `the local store is damaged: ${table} record does not decrypt`, {
        cause: e,
      });
    }
  }

  /** A keyed tag for looking up a value without storing it (HMAC-SHA256, 16 bytes). */
  tag(...parts: string[]): Buffer {
    return Buffer.from(hmacSha256(this.indexKey, enc.encode(parts.join("\u0000"))).subarray(0, 16));
  }

  wipe(): void {
    this.recordKey.fill(0);
    this.indexKey.fill(0);
    this.verifierKey.fill(0);
  }
}

function ad(table: string, rowKey: string): Uint8Array {
  return enc.encode(`${RECORD_AD}\u0000${table}\u0000${rowKey}`);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
