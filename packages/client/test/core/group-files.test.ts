// Files to a group (core/group-files.ts, PROTOCOL.md §14.3 "Groups") between whole client cores
// over a wire and a blob store that behaves as §14.2 says: one blob with a read token for each
// other member, one manifest each (direct, or forwarded through the member who introduced two
// strangers), fetched byte for byte, the blob gone after the last member's download; receipts
// count per member; an interrupted upload resumes for the members it was for, and one who left
// meanwhile gets nothing.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { groupBlobRelay } from "../../src/core/group-files.js";
import type { ClientEvent } from "../../src/core/types.js";
import { RelayUnreachableError } from "../../src/relay-connection.js";
import { befriend, deliver, drain, type Member, members } from "./group-helpers.js";
import { cleanupStores } from "./helpers.js";
import { MemoryBlobs } from "./memory-blobs.js";

const dirs: string[] = [];
afterEach(() => {
  cleanupStores();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "parley-group-files-"));
  dirs.push(d);
  return d;
};

/** A file of `size` random bytes named `name` in a fresh directory. */
function randomFile(size: number, name: string): { path: string; bytes: Buffer } {
  const path = join(tmp(), name);
  const bytes = randomBytes(size);
  writeFileSync(path, bytes);
  return { path, bytes };
}

/** One blob store all of `ms` reach whatever relay they ask for; the relays asked for are noted. */
function sharedBlobs(ms: readonly Member[]): { blobs: MemoryBlobs; relays: string[] } {
  const blobs = new MemoryBlobs();
  const relays: string[] = [];
  for (const m of ms) {
    m.core.pool.connect = (async (url: string) => {
      relays.push(url);
      return blobs;
    }) as unknown as typeof m.core.pool.connect;
  }
  return { blobs, relays };
}

/** Ann, Ben and Cat in "G" (made by Ann); Ben and Cat know each other unless `strangers`. */
async function trio(strangers = false): Promise<[Member, Member, Member]> {
  const [ann, ben, cat] = members("Ann", "Ben", "Cat") as [Member, Member, Member];
  befriend(ann, ben);
  befriend(ann, cat);
  if (!strangers) befriend(ben, cat);
  await ann.core.groupChanges.create("G", ["Ben", "Cat"]);
  await deliver([ann, ben, cat]);
  for (const m of [ann, ben, cat]) drain(m);
  return [ann, ben, cat];
}

const fileMessages = (events: readonly ClientEvent[]) =>
  events.filter((e) => e.type === "message" && e.file !== undefined);

describe("groupBlobRelay", () => {
  it("picks the relay most members are on; at a tie mine if it is one of them, else the first", () => {
    expect(groupBlobRelay(["ws://b", "ws://a", "ws://b"], "ws://a")).toBe("ws://b");
    expect(groupBlobRelay(["ws://b", "ws://a"], "ws://b")).toBe("ws://b");
    expect(groupBlobRelay(["ws://b", "ws://a"], "ws://c")).toBe("ws://a");
    expect(groupBlobRelay([], "ws://c")).toBeNull();
  });
});

describe("§14.3 a file to a group", () => {
  it("§14.3 is one blob with a read token per other member; each gets its own manifest, fetches it byte for byte, and the blob is gone after the last", async () => {
    const [ann, ben, cat] = await trio();
    const all = [ann, ben, cat];
    const { blobs, relays } = sharedBlobs(all);
    const { path, bytes } = randomFile(200_000, "photo.jpg");

    const sent = await ann.core.groupFiles.sendFile("G", path);
    expect(sent).toMatchObject({
      group: "G",
      contact: "Ann",
      name: "photo.jpg",
      size: bytes.length,
      recipients: 2,
      delivered: 0,
      uploadedChunks: 4,
    });
    // On the relay the members' mailboxes are on (not Ann's default one).
    expect(new Set(relays)).toEqual(new Set(["ws://relay.example"]));
    expect([...blobs.blobs.values()].map((b) => b.readers.size)).toEqual([2]);

    await deliver(all);
    for (const m of [ben, cat]) {
      expect(fileMessages(drain(m))).toMatchObject([
        {
          group: "G",
          contact: "Ann",
          direction: "in",
          text: "",
          authorSeq: 1,
          file: {
            id: sent.id,
            name: "photo.jpg",
            size: bytes.length,
            mediaType: "image/jpeg",
            state: "offered",
          },
        },
      ]);
      expect(m.core.files.list("G")).toMatchObject([
        { id: sent.id, group: "G", contact: "Ann", direction: "in", state: "offered" },
      ]);
      expect(m.core.files.list()).toHaveLength(1);
    }
    // Each member's copy carries its own read token, under the one signature.
    const token = (m: Member) => m.core.files.get(sent.id)!.readToken;
    expect(token(ben)).not.toBe(token(cat));

    const benDir = tmp();
    const got = await ben.core.fileDownload.fetch(sent.id, benDir);
    expect(readFileSync(got.path).equals(bytes)).toBe(true);
    // Cat has not fetched it: the blob stays for her.
    expect(blobs.blobs.size).toBe(1);
    const catGot = await cat.core.fileDownload.fetch(sent.id, tmp());
    expect(readFileSync(catGot.path).equals(bytes)).toBe(true);
    expect(blobs.blobs.size).toBe(0);

    // Delivered receipts come back pairwise, as for a text: delivered to 2 of 2, then read.
    await deliver(all);
    const file = () => ann.core.groupHistory.history("G").find((v) => v.file);
    expect(file()).toMatchObject({ direction: "out", status: "delivered", recipients: 2, delivered: 2 });
    for (const m of [ben, cat]) m.core.groupHistory.markRead("G");
    await deliver(all);
    expect(file()).toMatchObject({ status: "read", read: 2, file: { id: sent.id, state: "sent" } });
    expect(ann.core.files.list("G")).toMatchObject([
      { id: sent.id, group: "G", contact: "Ann", direction: "out", state: "sent" },
    ]);
    expect(ben.core.groupHistory.history("G").find((v) => v.file)).toMatchObject({
      file: { state: "fetched" },
    });
  });

  it("§14.3 reaches a member with no session with its author forwarded by the member who introduced them", async () => {
    const [ann, ben, cat] = await trio(true);
    const all = [ann, ben, cat];
    const { blobs } = sharedBlobs(all);
    const { path, bytes } = randomFile(70_000, "notes.txt");
    const sent = await ben.core.groupFiles.sendFile("G", path);
    expect(sent).toMatchObject({ recipients: 2 });
    await deliver(all);
    expect(fileMessages(drain(ann))).toMatchObject([{ contact: "Ben", file: { id: sent.id } }]);
    const [forwarded] = fileMessages(drain(cat));
    expect(forwarded).toMatchObject({ group: "G", forwarded: true, file: { id: sent.id, state: "offered" } });
    const got = await cat.core.fileDownload.fetch(sent.id, tmp());
    expect(readFileSync(got.path).equals(bytes)).toBe(true);
    await ann.core.fileDownload.fetch(sent.id, tmp());
    expect(blobs.blobs.size).toBe(0);
  });

  it("§14.3 an interrupted upload resumes for the members it was for; one who left meanwhile gets nothing", async () => {
    const [ann, ben, cat] = await trio();
    const all = [ann, ben, cat];
    const { blobs } = sharedBlobs(all);
    const { path, bytes } = randomFile(6 * 65536 + 5, "big.bin");
    const put = blobs.putChunk.bind(blobs);
    let cut = true;
    blobs.putChunk = async (id, token, index, sealed) => {
      if (cut && index === 3) {
        cut = false;
        throw new RelayUnreachableError("connection lost");
      }
      return put(id, token, index, sealed);
    };
    await expect(ann.core.groupFiles.sendFile("G", path)).rejects.toMatchObject({ code: "UNREACHABLE" });
    expect(ann.core.files.list("G")).toMatchObject([{ name: "big.bin", state: "uploading" }]);

    await cat.core.groupChanges.leave("G");
    await deliver(all);
    for (const m of all) drain(m);
    await expect(cat.core.groupFiles.sendFile("G", path)).rejects.toMatchObject({ code: "NOT_ALLOWED" });

    const sent = await ann.core.groupFiles.sendFile("G", path);
    expect(sent).toMatchObject({ recipients: 1, uploadedChunks: 4 });
    // One file, not two: the second run continued the first one's upload.
    expect(ann.core.files.list()).toMatchObject([{ id: sent.id, state: "sent" }]);
    await deliver(all);
    expect(fileMessages(drain(ben))).toMatchObject([{ file: { id: sent.id } }]);
    expect(fileMessages(drain(cat))).toEqual([]);
    expect(cat.core.files.list()).toEqual([]);
    const got = await ben.core.fileDownload.fetch(sent.id, tmp());
    expect(readFileSync(got.path).equals(bytes)).toBe(true);
    // Cat's read token is never used: the blob waits for its expiry.
    expect([...blobs.blobs.values()].map((b) => [...b.readers.values()])).toEqual([[true, false]]);
  });

  it("§14.3 a group with no one else to send to, or a path that is not a file, is refused with words", async () => {
    const [ann, ben] = members("Ann", "Ben") as [Member, Member];
    befriend(ann, ben);
    sharedBlobs([ann, ben]);
    await ann.core.groupChanges.create("G", ["Ben"]);
    await deliver([ann, ben]);
    await ben.core.groupChanges.leave("G");
    await deliver([ann, ben]);
    const { path } = randomFile(10, "a.txt");
    await expect(ann.core.groupFiles.sendFile("G", path)).rejects.toMatchObject({
      code: "USAGE",
      message: `G has no other member to send ${path} to`,
    });
    await expect(ann.core.groupFiles.sendFile("G", tmp())).rejects.toMatchObject({
      code: "USAGE",
      message: expect.stringMatching(/is not a regular file$/),
    });
    expect(ann.core.files.list()).toEqual([]);
  });
});
