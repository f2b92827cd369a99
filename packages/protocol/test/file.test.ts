// File contents sealed in chunks (PROTOCOL.md §14.1): every chunk back in its place, and any
// moved, repeated, dropped, cut or foreign chunk refused.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildFiles, patterned } from "../scripts/kat-files.js";
import {
  CryptoError,
  FILE_CHUNK_BYTES,
  FileCipher,
  fileChunkCount,
  fileChunkNonce,
  fileChunkSize,
  fromHex,
  toHex,
} from "../src/index.js";

const key = (n: number) => new Uint8Array(32).fill(n);

function sealFile(fileKey: Uint8Array, data: Uint8Array): Uint8Array[] {
  const c = new FileCipher(fileKey);
  const count = fileChunkCount(data.length);
  return Array.from({ length: count }, (_, i) =>
    c.seal(
      i,
      i === count - 1,
      data.subarray(i * FILE_CHUNK_BYTES, i * FILE_CHUNK_BYTES + fileChunkSize(data.length, i)),
    ),
  );
}

/** Opens a stream of sealed chunks as a downloader does: the last one it has is the last. */
function openAll(fileKey: Uint8Array, chunks: Uint8Array[]): Uint8Array {
  const c = new FileCipher(fileKey);
  const parts = chunks.map((s, i) => c.open(i, i === chunks.length - 1, s));
  return Buffer.concat(parts);
}

describe("file chunks (§14.1)", () => {
  it("cut into 64 KiB chunks, the last holding the rest; an empty file is one empty chunk", () => {
    expect([0, 1, 65_535, 65_536, 65_537, 200_000].map(fileChunkCount)).toEqual([1, 1, 1, 1, 2, 4]);
    expect(fileChunkSize(65_537, 0)).toBe(65_536);
    expect(fileChunkSize(65_537, 1)).toBe(1);
    expect(fileChunkSize(0, 0)).toBe(0);
    expect(() => fileChunkSize(10, 1)).toThrow(RangeError);
    expect(toHex(fileChunkNonce(258, true))).toBe(`${"00".repeat(15)}000000000000010201`);
    expect(toHex(fileChunkNonce(0, false))).toBe("00".repeat(24));
  });

  it("round-trips files of every shape", () => {
    for (const size of [0, 1, 65_535, 65_536, 65_537, 200_000]) {
      const data = patterned(size);
      const sealed = sealFile(key(1), data);
      expect(sealed.map((s) => s.length).reduce((a, b) => a + b, 0)).toBe(size + 16 * sealed.length);
      expect(Buffer.from(openAll(key(1), sealed)).equals(Buffer.from(data))).toBe(true);
    }
  });

  it("refuses a chunk moved, repeated, cut off at the end, flagged wrongly, altered or from another file", () => {
    const data = patterned(3 * FILE_CHUNK_BYTES + 10);
    const s = sealFile(key(1), data);
    const auth = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof CryptoError && e.code === "AUTH";
      }
      return false;
    };
    expect(auth(() => openAll(key(1), [s[1]!, s[0]!, s[2]!, s[3]!]))).toBe(true);
    expect(auth(() => openAll(key(1), [s[0]!, s[0]!, s[2]!, s[3]!]))).toBe(true);
    // Cut after chunk 2: its flag says "not last", so the stream does not end there.
    expect(auth(() => openAll(key(1), s.slice(0, 3)))).toBe(true);
    const c = new FileCipher(key(1));
    expect(auth(() => c.open(3, false, s[3]!))).toBe(true);
    const flipped = Uint8Array.from(s[2]!);
    flipped[100]! ^= 1;
    expect(auth(() => c.open(2, false, flipped))).toBe(true);
    const other = sealFile(key(2), data);
    expect(auth(() => openAll(key(1), [s[0]!, other[1]!, s[2]!, s[3]!]))).toBe(true);
    expect(auth(() => c.open(0, false, s[0]!.subarray(0, 15)))).toBe(true);
  });

  it("seals only what an honest sender makes: full chunks before the last, an empty one only alone", () => {
    const c = new FileCipher(key(1));
    expect(() => c.seal(0, false, new Uint8Array(10))).toThrow(RangeError);
    expect(() => c.seal(1, true, new Uint8Array(0))).toThrow(RangeError);
    expect(() => c.seal(0, true, new Uint8Array(FILE_CHUNK_BYTES + 1))).toThrow(RangeError);
    expect(() => new FileCipher(new Uint8Array(31))).toThrow(CryptoError);
  });

  it("property: any change to a sealed stream but none is refused", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("swap" as const), a: fc.nat(), b: fc.nat() }),
      fc.record({ kind: fc.constant("drop" as const), at: fc.nat() }),
      fc.record({ kind: fc.constant("repeat" as const), at: fc.nat() }),
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), byte: fc.nat(), bit: fc.nat(7) }),
    );
    const data = patterned(3 * FILE_CHUNK_BYTES + 5);
    const sealed = sealFile(key(9), data);
    fc.assert(
      fc.property(op, (o) => {
        const s = sealed.map((x) => Uint8Array.from(x));
        const n = s.length;
        if (o.kind === "swap") {
          const [a, b] = [o.a % n, o.b % n];
          if (a === b) return;
          [s[a], s[b]] = [s[b]!, s[a]!];
        } else if (o.kind === "drop") s.splice(o.at % n, 1);
        else if (o.kind === "repeat") s.splice(o.at % n, 0, s[o.at % n]!);
        else {
          const c = s[o.at % n]!;
          c[o.byte % c.length]! ^= 1 << o.bit;
        }
        expect(() => openAll(key(9), s)).toThrow(CryptoError);
      }),
      { numRuns: 200 },
    );
  });
});

describe("file known answers (vectors/kat.json `files`)", () => {
  const committed = JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8")).files;

  it("the committed vectors are exactly what the generator makes", () => {
    expect(JSON.parse(JSON.stringify(buildFiles().files))).toEqual(committed);
  });

  it("each recorded file opens from its recorded chunks to its pattern", () => {
    const fileKey = fromHex(committed.fileKey);
    for (const f of committed.cases as { size: number; chunks: { sealed?: string }[] }[]) {
      const full = f.chunks.every((c) => c.sealed !== undefined);
      if (!full) continue;
      const data = openAll(
        fileKey,
        f.chunks.map((c) => fromHex(c.sealed!)),
      );
      expect(toHex(data)).toBe(toHex(patterned(f.size)));
    }
  });
});

describe("§14.3 the chunk count a manifest must carry", () => {
  // The manifest's decoder (payload type 5) comes with the client half of file transfer and checks
  // its chunkCount against this; here, the formula itself: max(1, ⌈size / 65 536⌉).
  it("§14.3 fileChunkCount(size) is max(1, ⌈size / 65 536⌉)", () => {
    for (const size of [0, 1, 65535, 65536, 65537, 3 * 65536, 3 * 65536 + 1, 100 * 2 ** 20]) {
      expect(fileChunkCount(size)).toBe(Math.max(1, Math.ceil(size / 65536)));
    }
  });
});
