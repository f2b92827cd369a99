// Group files (PROTOCOL.md §14.3, §13.3 kinds 5 and 6): each member's copy carries its own read
// token under one signature by the author; the item round-trips through padding, the largest one
// fits 1024 bytes, malformed ones are BAD_FRAME, and the committed vectors (`groupFiles`) decode,
// re-encode and verify.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildGroups } from "../scripts/kat-groups.js";
import {
  decodePayload,
  encodeFileManifest,
  encodePayload,
  type FileManifest,
  fromHex,
  type GroupPayload,
  groupFileSignedBytes,
  Identity,
  MAX_FILE_MANIFEST_BYTES,
  PayloadError,
  toHex,
  verifyGroupFile,
} from "../src/index.js";

const [ann, ben, dan] = [1, 2, 3].map((n) => Identity.generate((len) => new Uint8Array(len).fill(n))) as [
  Identity,
  Identity,
  Identity,
];
const key = (i: Identity) => i.publicIdentity.signingKey;
const groupId = new Uint8Array(16).fill(7);
const id = new Uint8Array(16).fill(3);
const sentAt = 1_767_225_600_000;
const bytes32 = (n: number) => new Uint8Array(32).fill(n);

const file: FileManifest = {
  name: "plan.pdf",
  mediaType: "application/pdf",
  size: 70_000,
  sha256: bytes32(1),
  chunkCount: 2,
  relay: "wss://relay.example/parley",
  blobId: bytes32(2),
  readToken: bytes32(3),
  fileKey: bytes32(4),
  expiresAt: sentAt + 604_800_000,
};
const signed = { groupId, id, sentAt, seq: 5, file };
const signature = ann.sign(groupFileSignedBytes(signed));
const item = (body: GroupPayload["body"]): GroupPayload => ({ type: "group", id, sentAt, groupId, body });
const fileItem = item({ kind: "file", seq: 5, file, signature });
/** Where `M` sits in a kind 5 item: after the common header, group id, kind and seq. */
const M_AT = 26 + 16 + 1 + 4;

describe("§14.3 group file items (§13.3 kinds 5 and 6)", () => {
  it("§14.3 a file and a forwarded file round-trip through padding", () => {
    const forwarded = item({
      kind: "forward-file",
      author: key(ann),
      to: key(dan),
      seq: 5,
      file: { ...file, readToken: bytes32(9) },
      signature,
    });
    for (const p of [fileItem, forwarded]) expect(decodePayload(encodePayload(p))).toEqual(p);
    const padded = encodePayload(fileItem);
    // M is the manifest body's length, and the body follows it.
    const body = encodeFileManifest(file);
    expect((padded[M_AT]! << 8) | padded[M_AT + 1]!).toBe(body.length);
    expect(toHex(padded.subarray(M_AT + 2, M_AT + 2 + body.length))).toBe(toHex(body));
  });

  it("§14.3 the signature is the author's over everything but the read token: each member's copy verifies with its own token", () => {
    expect(verifyGroupFile(key(ann), signed, signature)).toBe(true);
    expect(
      verifyGroupFile(key(ann), { ...signed, file: { ...file, readToken: bytes32(9) } }, signature),
    ).toBe(true);
    expect(verifyGroupFile(key(ben), signed, signature)).toBe(false);
    const changed: [string, Partial<typeof signed>][] = [
      ["group id", { groupId: new Uint8Array(16) }],
      ["message id", { id: new Uint8Array(16) }],
      ["sentAt", { sentAt: sentAt + 1 }],
      ["seq", { seq: 6 }],
      ["name", { file: { ...file, name: "plan.pdf.exe" } }],
      ["media type", { file: { ...file, mediaType: "text/plain" } }],
      ["size", { file: { ...file, size: 70_001 } }],
      ["sha256", { file: { ...file, sha256: bytes32(5) } }],
      ["relay", { file: { ...file, relay: "wss://other.example/parley" } }],
      ["blob id", { file: { ...file, blobId: bytes32(6) } }],
      ["file key", { file: { ...file, fileKey: bytes32(7) } }],
      ["expiresAt", { file: { ...file, expiresAt: file.expiresAt + 1 } }],
    ];
    for (const [what, change] of changed)
      expect(verifyGroupFile(key(ann), { ...signed, ...change }, signature), what).toBe(false);
    expect(verifyGroupFile(key(ann), signed, signature.slice(0, 63))).toBe(false);
    expect(verifyGroupFile(key(ann), { ...signed, groupId: new Uint8Array(3) }, signature)).toBe(false);
  });

  it("§14.3 the largest forwarded file item (a 788-byte manifest) pads to 1024", () => {
    const largest: FileManifest = {
      ...file,
      name: "n".repeat(255),
      mediaType: "t".repeat(127),
      relay: `wss://${"r".repeat(249)}`,
    };
    expect(encodeFileManifest(largest).length).toBe(MAX_FILE_MANIFEST_BYTES);
    expect(MAX_FILE_MANIFEST_BYTES).toBe(788);
    const p = item({
      kind: "forward-file",
      author: key(ann),
      to: key(dan),
      seq: 1,
      file: largest,
      signature,
    });
    const padded = encodePayload(p);
    expect(padded.length).toBe(1024);
    expect(padded.lastIndexOf(0x80)).toBe(26 + 16 + 1 + 32 + 32 + 4 + 2 + 788 + 64);
  });

  it("§14.3 decoding refuses an M over 788, an M that is not the manifest's length, a bad manifest, truncation and trailing bytes (BAD_FRAME)", () => {
    const raw = encodePayload(fileItem);
    const end = raw.lastIndexOf(0x80);
    const body = encodeFileManifest(file).length;
    const withM = (m: number) => {
      const out = raw.slice();
      out[M_AT] = m >> 8;
      out[M_AT + 1] = m & 0xff;
      return out;
    };
    /** Content padded again. */
    const repad = (content: Uint8Array) => {
      const out = new Uint8Array(content.length + 1 <= 256 ? 256 : 1024);
      out.set(content);
      out[content.length] = 0x80;
      return out;
    };
    const content = raw.subarray(0, end);
    const cases: [string, Uint8Array][] = [
      ["M = 789", withM(789)],
      ["M = 0", withM(0)],
      ["M one short of the manifest", withM(body - 1)],
      ["M one past the manifest", withM(body + 1)],
      ["a name of length 0", repad(Uint8Array.from(content).fill(0, M_AT + 2, M_AT + 3))],
      ["truncated signature", repad(content.subarray(0, content.length - 1))],
      ["a trailing byte", repad(Uint8Array.from([...content, 0]))],
    ];
    for (const [what, bytes] of cases) {
      let error: unknown = null;
      try {
        decodePayload(bytes);
      } catch (e) {
        error = e;
      }
      expect(error, what).toBeInstanceOf(PayloadError);
      expect((error as PayloadError).code, what).toBe("BAD_FRAME");
    }
  });
});

describe("§14.3 group file known answers (vectors/kat.json `groupFiles`)", () => {
  const kat = JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8"));
  const committed = kat.groupFiles;

  it("§14.3 the committed vectors are exactly what the generator makes", () => {
    expect(JSON.parse(JSON.stringify(buildGroups().groupFiles))).toEqual(committed);
  });

  it("§14.3 each recorded copy decodes, re-encodes identically, carries its member's read token and verifies under the author's key", () => {
    const author = fromHex(committed.author);
    expect(author).toEqual(fromHex(kat.groups.members.ann.signingKey));
    const tokens = Object.values(committed.readTokens) as string[];
    for (const [i, p] of (committed.payloads as { kind: string; to: string; padded: string }[]).entries()) {
      const decoded = decodePayload(fromHex(p.padded));
      if (decoded.type !== "group") throw new Error("not a group payload");
      const b = decoded.body;
      if (b.kind !== "file" && b.kind !== "forward-file") throw new Error(`kind ${b.kind}`);
      expect(b.kind).toBe(p.kind);
      expect(toHex(encodePayload(decoded))).toBe(p.padded);
      expect(toHex(b.file.readToken)).toBe(tokens[i]);
      if (b.kind === "forward-file") {
        expect(toHex(b.author)).toBe(committed.author);
        expect(toHex(b.to)).toBe(p.to);
      }
      const m = {
        groupId: decoded.groupId,
        id: decoded.id,
        sentAt: decoded.sentAt,
        seq: b.seq,
        file: b.file,
      };
      expect(toHex(groupFileSignedBytes(m))).toBe(committed.signedBytes);
      expect(toHex(b.signature)).toBe(committed.signature);
      expect(verifyGroupFile(author, m, b.signature)).toBe(true);
    }
  });
});
