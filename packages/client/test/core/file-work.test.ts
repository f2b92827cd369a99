// The file transfers' chunk work (core/file-jobs.ts), in the worker thread (core/file-work.ts)
// and in the caller's thread alike: chunks sealed as FileCipher seals them, the SHA-256 of the
// whole plaintext (chunks the relay had included), chunks opened into the partial file in place;
// a file that changed, a chunk that does not open or has the wrong size, each its own failure.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { FILE_CHUNK_BYTES, FileCipher, fileChunkCount, toHex } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { type FileWork, fileWork, inlineWork } from "../../src/core/file-work.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function file(size: number) {
  const dir = mkdtempSync(join(tmpdir(), "parley-work-"));
  dirs.push(dir);
  const path = join(dir, "data.bin");
  const bytes = randomBytes(size);
  writeFileSync(path, bytes);
  const fileKey = randomBytes(32);
  const chunkCount = fileChunkCount(size);
  const chunk = (i: number) => bytes.subarray(i * FILE_CHUNK_BYTES, (i + 1) * FILE_CHUNK_BYTES);
  const cipher = new FileCipher(fileKey);
  const sealed = Array.from({ length: chunkCount }, (_, i) => cipher.seal(i, i === chunkCount - 1, chunk(i)));
  return { dir, path, bytes, fileKey, chunkCount, size, sealed, sha: toHex(sha256(bytes)) };
}

describe.each([
  ["a worker thread", fileWork],
  ["the caller's thread", async () => inlineWork()],
] as [string, () => Promise<FileWork>][])("file work in %s", (where, get) => {
  it("seals each chunk as FileCipher does and hashes the whole file, the chunks the relay had included", async () => {
    const work = await get();
    if (where === "a worker thread") expect(work.thread).toBe("worker");
    const f = file(3 * FILE_CHUNK_BYTES + 77);
    const job = work.job();
    // The relay had chunk 0: it is hashed, not sealed; chunk 2 is asked for twice (a refusal).
    await work.call({
      op: "upload",
      job,
      path: f.path,
      fileKey: f.fileKey,
      size: f.size,
      chunkCount: 4,
      hashed: 1,
    });
    const got = [];
    for (const i of [1, 2, 2, 3]) got.push((await work.call({ op: "seal", job, index: i })).sealed!);
    expect(got.map((s) => Buffer.from(s))).toEqual([1, 2, 2, 3].map((i) => Buffer.from(f.sealed[i]!)));
    expect(await work.call({ op: "finish", job })).toMatchObject({ sha256: f.sha, size: f.size });
    await work.call({ op: "end", job });
  });

  it("a file that shrank under the upload is a failure of its own", async () => {
    const work = await get();
    const f = file(2 * FILE_CHUNK_BYTES + 5);
    const job = work.job();
    await work.call({
      op: "upload",
      job,
      path: f.path,
      fileKey: f.fileKey,
      size: f.size,
      chunkCount: 3,
      hashed: 0,
    });
    truncateSync(f.path, FILE_CHUNK_BYTES);
    await expect(work.call({ op: "seal", job, index: 1 })).rejects.toMatchObject({ kind: "changed" });
    await work.call({ op: "end", job });
  });

  it("opens chunks into the partial file in place, after the chunks already there, and hashes it all", async () => {
    const work = await get();
    const f = file(3 * FILE_CHUNK_BYTES + 1);
    const part = join(f.dir, "part");
    writeFileSync(part, f.bytes.subarray(0, 2 * FILE_CHUNK_BYTES));
    const job = work.job();
    await work.call({
      op: "download",
      job,
      path: part,
      fileKey: f.fileKey,
      size: f.size,
      chunkCount: 4,
      done: 2,
    });
    for (const i of [2, 3]) await work.call({ op: "open", job, index: i, sealed: f.sealed[i]! });
    expect(await work.call({ op: "finish", job })).toEqual({ sha256: f.sha, size: f.size });
    await work.call({ op: "end", job });
    expect(readFileSync(part).equals(f.bytes)).toBe(true);
  });

  it("a chunk that does not open, or one in the wrong place, is refused and nothing of it is written", async () => {
    const work = await get();
    const f = file(2 * FILE_CHUNK_BYTES + 9);
    const part = join(f.dir, "part");
    writeFileSync(part, "");
    const job = work.job();
    await work.call({
      op: "download",
      job,
      path: part,
      fileKey: f.fileKey,
      size: f.size,
      chunkCount: 3,
      done: 0,
    });
    const flipped = Uint8Array.from(f.sealed[0]!);
    flipped[100]! ^= 1;
    await expect(work.call({ op: "open", job, index: 0, sealed: flipped })).rejects.toMatchObject({
      kind: "auth",
      message: "chunk 1 did not open",
    });
    await expect(work.call({ op: "open", job, index: 0, sealed: f.sealed[1]! })).rejects.toMatchObject({
      kind: "auth",
    });
    await work.call({ op: "end", job });
    expect(readFileSync(part).length).toBe(0);
  });
});
