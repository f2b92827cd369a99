// Fetching an offered file (core/file-download.ts, core/files.ts) against a blob store that
// behaves as PROTOCOL.md §14.2 says: the file appears under its final name only once checked;
// a download resumes from its partial file; a chunk altered, a wrong hash or a blob gone leaves
// nothing behind and says why.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  FILE_CHUNK_BYTES,
  FileCipher,
  type FileManifest,
  fileChunkCount,
  newMessageId,
} from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { Contacts } from "../../src/core/contacts.js";
import { FileDownload, partialName } from "../../src/core/file-download.js";
import { Files } from "../../src/core/files.js";
import type { MessageView } from "../../src/core/types.js";
import { cleanupStores, contactRecord, harness } from "./helpers.js";
import { MemoryBlobs } from "./memory-blobs.js";

const dirs: string[] = [];
afterEach(() => {
  cleanupStores();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "parley-fetch-"));
  dirs.push(d);
  return d;
};

/** A sender's side: the file sealed into `blobs`, and the manifest offering it. */
async function upload(blobs: MemoryBlobs, data: Uint8Array, name: string): Promise<FileManifest> {
  const fileKey = randomBytes(32);
  const blobId = randomBytes(32);
  const writeToken = randomBytes(32);
  const readToken = randomBytes(32);
  const chunkCount = fileChunkCount(data.length);
  await blobs.createBlob({
    blobId,
    writeToken,
    chunkCount,
    sealedSize: data.length + 16 * chunkCount,
    readTokens: [readToken],
  });
  const cipher = new FileCipher(fileKey);
  for (let i = 0; i < chunkCount; i++) {
    const chunk = data.subarray(i * FILE_CHUNK_BYTES, (i + 1) * FILE_CHUNK_BYTES);
    await blobs.putChunk(blobId, writeToken, i, cipher.seal(i, i === chunkCount - 1, chunk));
  }
  return {
    name,
    mediaType: "",
    size: data.length,
    sha256: sha256(data),
    chunkCount,
    relay: "ws://relay.example",
    blobId,
    readToken,
    fileKey,
    expiresAt: Date.now() + 86_400_000,
  };
}

function setup() {
  const { store, ctx } = harness();
  const contacts = new Contacts(ctx, store.tables.contacts);
  const contactId = contacts.put(null, contactRecord("Bob"));
  const shown: MessageView[] = [];
  const files = new Files(
    ctx,
    store.tables.files,
    contacts,
    {
      add: () => 1,
      view: (c, m) => {
        const v = {
          contact: c.name,
          id: m.id,
          direction: m.direction,
          text: "",
          sentAt: 0,
          receivedAt: 0,
          status: m.status,
        };
        shown.push(v);
        return v;
      },
    },
    { queue: () => {} },
  );
  const blobs = new MemoryBlobs();
  const download = new FileDownload(ctx, files, async () => blobs);
  /** Bob offers the manifest; returns the file id. */
  const offer = (file: FileManifest) => {
    const id = newMessageId();
    ctx.tx(() =>
      files.receive(contactId, contacts.get(contactId)!, { type: "file", id, sentAt: 1, file }, true),
    );
    return Buffer.from(id).toString("hex");
  };
  return { files, blobs, download, offer, shown };
}

describe("§14.4 fetching a file", () => {
  it("§14.4 saves the checked file under its sanitised name and tells the relay it is done", async () => {
    const { files, blobs, download, offer } = setup();
    const data = randomBytes(3 * FILE_CHUNK_BYTES + 10);
    const id = offer(await upload(blobs, data, "../../etc/passwd"));
    expect(files.list()).toMatchObject([{ id, name: "../../etc/passwd", state: "offered", contact: "Bob" }]);
    const dir = tmp();
    const got = await download.fetch(id, dir);
    expect(got).toMatchObject({ path: join(dir, "etcpasswd"), size: data.length, downloadedChunks: 4 });
    expect(readFileSync(got.path).equals(data)).toBe(true);
    expect(readdirSync(dir)).toEqual(["etcpasswd"]);
    expect(files.get(id)).toMatchObject({ state: "fetched", savedAs: got.path });
    // blobDone: the only reader is done, so the relay forgot the blob.
    expect(blobs.blobs.size).toBe(0);
    await expect(download.fetch(id, dir)).rejects.toThrow(/already fetched/);
  });

  it("§14.4 resumes from the whole chunks of its partial file, fetching only the rest", async () => {
    const { blobs, download, offer } = setup();
    const data = randomBytes(5 * FILE_CHUNK_BYTES + 1);
    const id = offer(await upload(blobs, data, "movie.mkv"));
    const dir = tmp();
    // Two whole chunks and part of a third were written before the interruption.
    writeFileSync(partialName(dir, id), data.subarray(0, 2 * FILE_CHUNK_BYTES + 500));
    const got = await download.fetch(id, dir);
    expect(got.downloadedChunks).toBe(4);
    expect(blobs.reads).toEqual([2, 3, 4, 5]);
    expect(readFileSync(got.path).equals(data)).toBe(true);
    expect(readdirSync(dir)).toEqual(["movie.mkv"]);
  });

  it("§14.4 a partial file that is not the sender's fails the SHA-256 check and leaves nothing", async () => {
    const { files, blobs, download, offer } = setup();
    const data = randomBytes(3 * FILE_CHUNK_BYTES);
    const id = offer(await upload(blobs, data, "a.bin"));
    const dir = tmp();
    const wrong = Buffer.from(data.subarray(0, FILE_CHUNK_BYTES));
    wrong[7]! ^= 1;
    writeFileSync(partialName(dir, id), wrong);
    await expect(download.fetch(id, dir)).rejects.toMatchObject({
      code: "FILE_FAILED",
      message: "a.bin: its SHA-256 does not match the one the sender announced; nothing was saved",
    });
    expect(readdirSync(dir)).toEqual([]);
    expect(files.get(id)).toMatchObject({ state: "failed" });
  });

  it("§14.4 a chunk altered on the relay fails the fetch, names the chunk, and leaves nothing", async () => {
    const { files, blobs, download, offer } = setup();
    const data = randomBytes(4 * FILE_CHUNK_BYTES);
    const id = offer(await upload(blobs, data, "a.bin"));
    [...blobs.blobs.values()][0]!.chunks[2]![50]! ^= 0x10;
    const dir = tmp();
    await expect(download.fetch(id, dir)).rejects.toMatchObject({
      code: "FILE_FAILED",
      message:
        "a.bin: chunk 3 of 4 failed its authentication check: the file was altered on the relay or on the way; nothing was saved",
    });
    expect(readdirSync(dir)).toEqual([]);
    expect(files.get(id)).toMatchObject({ state: "failed", error: expect.stringMatching(/altered/) });
  });

  it('§14.2 a blob the relay no longer has is "expired on the relay"', async () => {
    const { files, blobs, download, offer } = setup();
    const id = offer(await upload(blobs, randomBytes(100), "gone.txt"));
    blobs.blobs.clear();
    const dir = tmp();
    await expect(download.fetch(id, dir)).rejects.toMatchObject({
      code: "FILE_FAILED",
      message: expect.stringMatching(/^gone\.txt: expired on the relay/),
    });
    expect(readdirSync(dir)).toEqual([]);
    expect(files.get(id)).toMatchObject({ state: "expired" });
  });

  it("§14.4 --out: a directory takes the sanitised name, a path its own; neither replaces a file", async () => {
    const { blobs, download, offer } = setup();
    const dir = tmp();
    writeFileSync(join(dir, "x.txt"), "mine");
    const one = offer(await upload(blobs, Buffer.from("one"), "x.txt"));
    expect((await download.fetch(one, dir)).path).toBe(join(dir, "x (1).txt"));
    const two = offer(await upload(blobs, Buffer.from("two"), "whatever"));
    expect((await download.fetch(two, join(dir, "x.txt"))).path).toBe(join(dir, "x (2).txt"));
    expect(readFileSync(join(dir, "x.txt"), "utf8")).toBe("mine");
    expect(readFileSync(join(dir, "x (2).txt"), "utf8")).toBe("two");
  });

  it("§14.4 does not connect to a relay URL that breaks the §4.3 rules", async () => {
    const { files, blobs, download, offer } = setup();
    const id = offer({ ...(await upload(blobs, Buffer.from("x"), "x")), relay: "http://evil.example/" });
    await expect(download.fetch(id, tmp())).rejects.toMatchObject({
      code: "FILE_FAILED",
      message: expect.stringMatching(/^x: the offer names a relay that is not valid/),
    });
    expect(files.get(id)).toMatchObject({ state: "failed" });
  });

  it("refuses an unknown file id", async () => {
    const { download } = setup();
    await expect(download.fetch("00".repeat(16))).rejects.toMatchObject({ code: "UNKNOWN_FILE" });
    await expect(download.fetch("zz")).rejects.toMatchObject({ code: "UNKNOWN_FILE" });
  });
});
