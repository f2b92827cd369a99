// Who continues a pending upload (core/file-upload.ts): the process sending it holds a claim on
// its record, so that a sync or the terminal UI does not send the same chunks alongside a
// `send-file` that is still running. A claim lapses when its process is gone or its time is up.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileChunkCount } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { Contacts } from "../../src/core/contacts.js";
import { FileUpload } from "../../src/core/file-upload.js";
import { Files } from "../../src/core/files.js";
import type { FileRecord } from "../../src/store/records.js";
import { cleanupStores, contactRecord, harness } from "./helpers.js";
import { MemoryBlobs } from "./memory-blobs.js";

const dirs: string[] = [];
afterEach(() => {
  cleanupStores();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The pid of a process that has ended. */
function deadPid(): number {
  return spawnSync(process.execPath, ["-e", ""]).pid!;
}

function setup() {
  const { store, ctx } = harness();
  const contacts = new Contacts(ctx, store.tables.contacts);
  const conversation = contacts.put(null, contactRecord("Bob"));
  const files = new Files(
    ctx,
    store.tables.files,
    contacts,
    { add: () => 1, view: () => ({}) as never },
    {
      queue: () => {},
    },
  );
  const blobs = new MemoryBlobs();
  // Nothing here gets as far as an offer: the modules for it are not needed.
  const upload = new FileUpload(
    ctx,
    files,
    contacts,
    {} as never,
    {} as never,
    {} as never,
    async () => blobs,
  );
  const dir = mkdtempSync(join(tmpdir(), "parley-claim-"));
  dirs.push(dir);
  const path = join(dir, "data.bin");
  writeFileSync(path, randomBytes(100_000));
  const st = statSync(path);
  const rec: FileRecord = {
    id: "ab".repeat(16),
    direction: "out",
    conversation,
    name: "data.bin",
    mediaType: "",
    size: st.size,
    chunkCount: fileChunkCount(st.size),
    relay: "ws://relay.example",
    blobId: "01".repeat(32),
    fileKey: "02".repeat(32),
    writeToken: "03".repeat(32),
    readTokens: ["04".repeat(32)],
    path,
    mtimeMs: st.mtimeMs,
    next: 3,
    state: "uploading",
    createdAt: 1,
  };
  const pending = (uploader?: FileRecord["uploader"]) => files.put({ ...rec, uploader });
  return { files, upload, rec, path, pending };
}

describe("claims on pending uploads", () => {
  it("an upload another running process is sending is left to it: no claim, and send-file says LOCKED", async () => {
    const s = setup();
    s.pending({ pid: process.ppid, until: Date.now() + 60_000 });
    expect(s.upload.claim(s.rec.id)).toBeNull();
    await expect(s.upload.send("Bob", s.path)).rejects.toMatchObject({
      code: "LOCKED",
      message: `data.bin is being sent already, by another parley process (pid ${process.ppid}); its upload goes on there`,
    });
    expect(s.files.get(s.rec.id)).toMatchObject({ state: "uploading", uploader: { pid: process.ppid } });
  });

  it("a claim whose process is gone (kill -9) or whose time ran out is taken over; one process claims once", () => {
    const s = setup();
    for (const uploader of [
      { pid: deadPid(), until: Date.now() + 60_000 },
      { pid: process.ppid, until: Date.now() - 1 },
      undefined,
    ]) {
      s.pending(uploader);
      const claimed = s.upload.claim(s.rec.id);
      expect(claimed).toMatchObject({ id: s.rec.id, uploader: { pid: process.pid } });
      expect(s.files.get(s.rec.id)!.uploader?.pid).toBe(process.pid);
      // This process is sending it now: not a second time.
      expect(s.upload.claim(s.rec.id)).toBeNull();
      s.upload.release(claimed!);
      expect(s.files.get(s.rec.id)!.uploader).toBeUndefined();
    }
  });

  it("only pending uploads are claimed: not one sent or failed, nor a file offered to me", () => {
    const s = setup();
    for (const patch of [{ state: "sent" }, { state: "failed" }, { direction: "in" }] as const) {
      s.files.put({ ...s.rec, ...patch });
      expect(s.upload.claim(s.rec.id)).toBeNull();
    }
  });
});
