// The file manifest payload (PROTOCOL.md §7.1 type 5, §14.3): round trips, the largest manifest's
// size, and every refusal the decoder owes (a length out of range, bad UTF-8 or ASCII, a chunk
// count that does not match the size, truncation, trailing bytes).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildFiles } from "../scripts/kat-files.js";
import {
  decodePayload,
  encodePayload,
  type FileManifest,
  type FilePayload,
  fromHex,
  MAX_FILE_PAYLOAD_BYTES,
  PayloadError,
  toHex,
} from "../src/index.js";

const fill = (n: number, b: number) => new Uint8Array(n).fill(b);
const manifest = (over: Partial<FileManifest> = {}): FileManifest => ({
  name: "report.pdf",
  mediaType: "application/pdf",
  size: 65537,
  sha256: fill(32, 1),
  chunkCount: 2,
  relay: "wss://relay.example",
  blobId: fill(32, 2),
  readToken: fill(32, 3),
  fileKey: fill(32, 4),
  expiresAt: 1_767_225_600_000,
  ...over,
});
const payload = (over: Partial<FileManifest> = {}): FilePayload => ({
  type: "file",
  id: fill(16, 9),
  sentAt: 1_767_225_600_000,
  file: manifest(over),
});

/** The raw (unpadded) bytes of a payload, to edit before padding it again. */
function raw(p: FilePayload): number[] {
  const padded = encodePayload(p);
  return [...padded.subarray(0, padded.lastIndexOf(0x80))];
}
function pad(bytes: number[]): Uint8Array {
  const b = [256, 1024, 4096].find((x) => bytes.length + 1 <= x)!;
  const out = new Uint8Array(b);
  out.set(bytes);
  out[bytes.length] = 0x80;
  return out;
}
function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PayloadError);
    return (e as PayloadError).code;
  }
  throw new Error("expected a throw");
}

/** Offsets in the raw payload of `payload()` (name 10 bytes, media type 15, URL 19). */
const at = { nameLen: 26, typeLen: 37, size: 53, chunkCount: 93, urlLen: 97 };

describe("§14.3 file manifest payloads", () => {
  it("§14.3 round-trips manifests, including an empty file, a long name and no media type", () => {
    const samples = [
      payload(),
      payload({ size: 0, chunkCount: 1, mediaType: "" }),
      payload({ size: 65536, chunkCount: 1, name: "é".repeat(127) }),
      payload({ size: 2 ** 40, chunkCount: 2 ** 24, name: "🌍 x" }),
    ];
    for (const p of samples) {
      const padded = encodePayload(p);
      expect(decodePayload(padded)).toEqual(p);
      expect(encodePayload(decodePayload(padded) as FilePayload)).toEqual(padded);
    }
    expect(raw(payload())[1]).toBe(5);
    expect(raw(payload())[at.nameLen]).toBe(10);
    expect(raw(payload())[at.urlLen]).toBe(19);
  });

  it("§14.3 the largest manifest is 814 bytes and pads to 1024", () => {
    const largest = payload({
      name: "n".repeat(255),
      mediaType: "t".repeat(127),
      relay: `wss://${"r".repeat(249)}`,
    });
    expect(MAX_FILE_PAYLOAD_BYTES).toBe(814);
    expect(raw(largest).length).toBe(814);
    expect(encodePayload(largest).length).toBe(1024);
  });

  it("§14.3 decoding refuses lengths out of range, bad UTF-8 or ASCII, a wrong chunk count, truncation and trailing bytes (BAD_FRAME)", () => {
    const good = raw(payload());
    const edit = (offset: number, ...bytes: number[]) => {
      const b = [...good];
      b.splice(offset, bytes.length, ...bytes);
      return b;
    };
    const cases: [string, number[]][] = [
      ["an empty name", [...good.slice(0, at.nameLen), 0, ...good.slice(at.typeLen)]],
      ["a name that is not UTF-8", edit(at.nameLen + 1, 0xff)],
      ["a media type of 128 bytes", edit(at.typeLen, 128)],
      ["a media type with a space", edit(at.typeLen + 1, 0x20)],
      ["a media type with a control", edit(at.typeLen + 1, 0x7f)],
      ["a chunk count one too many", edit(at.chunkCount, 0, 0, 0, 3)],
      ["a chunk count one too few", edit(at.chunkCount, 0, 0, 0, 1)],
      [
        "a chunk count of 0 for an empty file",
        edit(at.size, ...fill(8, 0), ...good.slice(at.size + 8, at.chunkCount), 0, 0, 0, 0),
      ],
      ["an empty relay URL", [...good.slice(0, at.urlLen), 0, ...good.slice(at.urlLen + 20)]],
      ["a relay URL with a non-ASCII byte", edit(at.urlLen + 1, 0xc3)],
      ["a size above 2^53 − 1", edit(at.size, 0, 0x20)],
      ["truncation", good.slice(0, -1)],
      ["a trailing byte", [...good, 0]],
    ];
    for (const [what, bytes] of cases)
      expect(
        code(() => decodePayload(pad(bytes))),
        what,
      ).toBe("BAD_FRAME");
    expect(decodePayload(pad(good))).toEqual(payload());
  });

  it("§14.3 encoding refuses a manifest it could not decode (RangeError naming the field)", () => {
    expect(() => encodePayload(payload({ name: "" }))).toThrow(/name/);
    expect(() => encodePayload(payload({ name: "x".repeat(256) }))).toThrow(/name/);
    expect(() => encodePayload(payload({ mediaType: "text/plain; charset=utf-8" }))).toThrow(/mediaType/);
    expect(() => encodePayload(payload({ chunkCount: 3 }))).toThrow(/chunkCount/);
    expect(() => encodePayload(payload({ relay: "" }))).toThrow(/relay/);
    expect(() => encodePayload(payload({ blobId: fill(31, 0) }))).toThrow(/blobId/);
  });
});

describe("§14.3 file manifest known answers (vectors/kat.json `fileManifests`)", () => {
  const committed = JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8"))
    .fileManifests as {
    cases: { id: string; sentAt: number; file: Record<string, string | number>; padded: string }[];
  };

  it("the committed manifests are exactly what the generator makes", () => {
    expect(JSON.parse(JSON.stringify(buildFiles().fileManifests))).toEqual(committed);
  });

  it("§14.3 each recorded manifest decodes to its recorded fields and re-encodes to the same bytes", () => {
    expect(committed.cases.length).toBeGreaterThan(1);
    for (const c of committed.cases) {
      const decoded = decodePayload(fromHex(c.padded)) as FilePayload;
      expect(decoded.type).toBe("file");
      expect(toHex(decoded.id)).toBe(c.id);
      expect(decoded.sentAt).toBe(c.sentAt);
      const f = decoded.file;
      expect({
        ...f,
        sha256: toHex(f.sha256),
        blobId: toHex(f.blobId),
        readToken: toHex(f.readToken),
        fileKey: toHex(f.fileKey),
      }).toEqual(c.file);
      expect(toHex(encodePayload(decoded))).toBe(c.padded);
    }
  });
});
