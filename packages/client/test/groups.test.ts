// The client's group rules without the store (PROTOCOL.md §13.3, §13.4): routing, what an
// arriving group item means, and per-author sequence numbers.
import {
  type FileManifest,
  GroupLog,
  type GroupOp,
  type GroupPayload,
  type GroupState,
  groupFileSignedBytes,
  groupTextSignedBytes,
  Identity,
  signGroupEntry,
  toHex,
} from "@parley/protocol";
import { describe, expect, it } from "vitest";
import { judge } from "../src/groups/incoming.js";
import { introducer, routes } from "../src/groups/routing.js";
import { emptySeqs, missingSeqs, noteSeq } from "../src/groups/sequence.js";

const [ann, ben, cat, dan, eve] = Array.from({ length: 5 }, () => Identity.generate()) as [
  Identity,
  Identity,
  Identity,
  Identity,
  Identity,
];
const k = (i: Identity) => toHex(i.publicIdentity.signingKey);
const groupId = new Uint8Array(16).fill(1);

/** Ann creates the group with Ben and Cat; Ben (made admin) adds Dan. */
function group(): { log: GroupLog; state: GroupState } {
  const log = new GroupLog(groupId);
  const e = (author: Identity, op: GroupOp, parent?: Uint8Array) =>
    signGroupEntry(author, { groupId, op, createdAt: 1, ...(parent ? { parent } : {}) });
  const create = e(ann, {
    op: "create",
    name: "g",
    members: [
      { identity: ben.publicIdentity, admin: true },
      { identity: cat.publicIdentity, admin: false },
    ],
  });
  log.add(create);
  log.add(e(ben, { op: "add", member: dan.publicIdentity }, create.hash));
  return { log, state: log.state()! };
}

function text(author: Identity, seq: number, body = "hi"): GroupPayload {
  const m = { groupId, id: new Uint8Array(16).fill(seq), sentAt: 1000 + seq, seq, text: body };
  return {
    type: "group",
    id: m.id,
    sentAt: m.sentAt,
    groupId,
    body: { kind: "text", seq, text: body, signature: author.sign(groupTextSignedBytes(m)) },
  };
}

function forward(author: Identity, to: Identity, seq: number): GroupPayload {
  const t = text(author, seq);
  if (t.body.kind !== "text") throw new Error("text");
  return {
    ...t,
    body: {
      kind: "forward",
      author: author.publicIdentity.signingKey,
      to: to.publicIdentity.signingKey,
      seq,
      text: t.body.text,
      signature: t.body.signature,
    },
  };
}

const manifest: FileManifest = {
  name: "plan.pdf",
  mediaType: "application/pdf",
  size: 10,
  sha256: new Uint8Array(32).fill(1),
  chunkCount: 1,
  relay: "wss://relay.example",
  blobId: new Uint8Array(32).fill(2),
  readToken: new Uint8Array(32).fill(3),
  fileKey: new Uint8Array(32).fill(4),
  expiresAt: 9_000_000,
};

/** `author`'s file item (§14.3), with `readToken` as the recipient's own, optionally forwarded to `to`. */
function fileItem(author: Identity, seq: number, readToken: number, to?: Identity): GroupPayload {
  const id = new Uint8Array(16).fill(100 + seq);
  const sentAt = 2000 + seq;
  const signature = author.sign(groupFileSignedBytes({ groupId, id, sentAt, seq, file: manifest }));
  const file = { ...manifest, readToken: new Uint8Array(32).fill(readToken) };
  const body: GroupPayload["body"] = to
    ? {
        kind: "forward-file",
        author: author.publicIdentity.signingKey,
        to: to.publicIdentity.signingKey,
        seq,
        file,
        signature,
      }
    : { kind: "file", seq, file, signature };
  return { type: "group", id, sentAt, groupId, body };
}

describe("routing (§13.4)", () => {
  it("goes direct where there is a session, else through the introducer of the pair", () => {
    const { state } = group();
    // Cat has sessions with Ann (the creator) only; Dan was added by Ben.
    const catSessions = new Set([k(ann)]);
    expect(introducer(state, k(cat), k(dan))).toBe(k(ben));
    expect(introducer(state, k(ben), k(cat))).toBe(k(ann));
    const r = routes(state, k(cat), (m) => catSessions.has(m));
    expect(r).toEqual([
      { to: k(ann), via: null },
      // Ben joined with Cat in the create: the creator introduces them, and Cat has her session.
      { to: k(ben), via: k(ann) },
      // Dan's introducer is Ben, with whom Cat has no session yet: Dan cannot be reached for now.
      { to: k(dan), via: undefined },
    ]);
    catSessions.add(k(ben));
    expect(routes(state, k(cat), (m) => catSessions.has(m)).at(-1)).toEqual({ to: k(dan), via: k(ben) });
  });
});

describe("an arriving group item (§13.3)", () => {
  const { state } = group();
  const all = () => true;

  it("a text is its sender's, checked by signature; a non-member's, or a forged one, is dropped", () => {
    expect(judge(text(ben, 1), { state, me: k(cat), from: k(ben), hasSession: all })).toEqual({
      kind: "message",
      author: k(ben),
      seq: 1,
      text: "hi",
      forwarded: false,
    });
    // Ann's signature arriving over Ben's session: nobody can speak as another member.
    expect(judge(text(ann, 1), { state, me: k(cat), from: k(ben), hasSession: all }).kind).toBe("drop");
    // Someone the log never named may be a member in entries still on their way: kept for later,
    // as is anything for a group not held yet.
    expect(judge(text(eve, 1), { state, me: k(cat), from: k(eve), hasSession: all })).toMatchObject({
      kind: "wait",
      reason: "from someone not (yet) a member",
    });
    expect(judge(text(ben, 1), { state: null, me: k(cat), from: k(ben), hasSession: all }).kind).toBe("wait");
  });

  it("a removed member's items are dropped, and nothing is taken once I am no longer a member", () => {
    const { log, state: before } = group();
    const remove = signGroupEntry(ann, {
      groupId,
      parent: Buffer.from(before.head, "hex"),
      createdAt: 2,
      op: { op: "remove", member: dan.publicIdentity.signingKey },
    });
    log.add(remove);
    const after = log.state()!;
    expect(judge(text(dan, 1), { state: after, me: k(cat), from: k(dan), hasSession: all })).toMatchObject({
      kind: "drop",
      reason: "from someone who is no longer a member",
    });
    expect(
      judge(forward(dan, cat, 2), { state: after, me: k(cat), from: k(ben), hasSession: all }),
    ).toMatchObject({
      kind: "drop",
      reason: "a forwarded message by someone who is no longer a member",
    });
    expect(judge(text(ann, 1), { state: after, me: k(dan), from: k(ann), hasSession: all })).toMatchObject({
      kind: "drop",
      reason: "I am no longer a member",
    });
  });

  it("a forward is its author's; it is passed on once, only when it came from its author", () => {
    const f = forward(ann, dan, 3);
    // Dan gets Ann's message through Ben.
    expect(judge(f, { state, me: k(dan), from: k(ben), hasSession: all })).toMatchObject({
      kind: "message",
      author: k(ann),
      forwarded: true,
    });
    // Ben, the introducer, gets it from Ann herself and passes it on to Dan.
    expect(judge(f, { state, me: k(ben), from: k(ann), hasSession: all })).toEqual({
      kind: "pass-on",
      to: k(dan),
    });
    // Not twice: from anyone but the author, a forward for someone else is dropped.
    expect(judge(f, { state, me: k(ben), from: k(cat), hasSession: all }).kind).toBe("drop");
    // Without a session to pass it on over yet, it waits for one; with someone else's signature, dropped.
    expect(judge(f, { state, me: k(ben), from: k(ann), hasSession: () => false }).kind).toBe("wait");
    const forged = { ...f, body: { ...f.body, author: ben.publicIdentity.signingKey } } as GroupPayload;
    expect(judge(forged, { state, me: k(dan), from: k(ben), hasSession: all }).kind).toBe("drop");
  });

  it("an introduction goes from the new member to its introducer, and on to the member it is for", () => {
    const intro: GroupPayload = {
      type: "group",
      id: new Uint8Array(16),
      sentAt: 1,
      groupId,
      body: {
        kind: "introduce",
        from: dan.publicIdentity.signingKey,
        to: cat.publicIdentity.signingKey,
        code: "CODE",
      },
    };
    expect(judge(intro, { state, me: k(ben), from: k(dan), hasSession: all })).toEqual({
      kind: "pass-on",
      to: k(cat),
    });
    expect(judge(intro, { state, me: k(cat), from: k(ben), hasSession: all })).toEqual({
      kind: "introduction",
      from: k(dan),
      code: "CODE",
    });
    // Someone passing on another's introduction is not its maker: dropped.
    expect(judge(intro, { state, me: k(ben), from: k(ann), hasSession: all }).kind).toBe("drop");
    // The introducer without a session with the member yet keeps it until it has one.
    expect(judge(intro, { state, me: k(ben), from: k(dan), hasSession: (m) => m !== k(cat) }).kind).toBe(
      "wait",
    );
  });

  it("entries are taken from any session (a new member learns the log that way); junk is dropped", () => {
    const { log } = group();
    const entry = log.all()[0]!;
    const p: GroupPayload = {
      type: "group",
      id: new Uint8Array(16),
      sentAt: 1,
      groupId,
      body: { kind: "entry", entry: entry.bytes },
    };
    expect(judge(p, { state: null, me: k(dan), from: k(ben), hasSession: all })).toMatchObject({
      kind: "entry",
    });
    const bad = Uint8Array.from(entry.bytes);
    bad[bad.length - 1]! ^= 1;
    expect(
      judge(
        { ...p, body: { kind: "entry", entry: bad } },
        { state: null, me: k(dan), from: k(ben), hasSession: all },
      ),
    ).toMatchObject({ kind: "drop", reason: "a malformed membership entry (BAD_SIGNATURE)" });
  });
});

describe("an arriving group file (§14.3)", () => {
  const { state } = group();
  const all = () => true;

  it("§14.3 is its sender's message with my copy of the manifest; each member's read token verifies under the one signature", () => {
    for (const token of [3, 9]) {
      expect(judge(fileItem(ben, 4, token), { state, me: k(cat), from: k(ben), hasSession: all })).toEqual({
        kind: "message",
        author: k(ben),
        seq: 4,
        text: "",
        forwarded: false,
        file: { ...manifest, readToken: new Uint8Array(32).fill(token) },
      });
    }
  });

  it("§14.3 a forged or altered file, a removed member's, or one passed on by anyone but its author is dropped", () => {
    const f = fileItem(ben, 4, 3);
    if (f.body.kind !== "file") throw new Error("file");
    // Ben's signature arriving over Ann's session, and a manifest changed after it was signed.
    expect(judge(f, { state, me: k(cat), from: k(ann), hasSession: all })).toMatchObject({
      kind: "drop",
      reason: "a file whose signature is not its sender's",
    });
    for (const changed of [
      { ...f.body.file, sha256: new Uint8Array(32).fill(7) },
      { ...f.body.file, fileKey: new Uint8Array(32).fill(7) },
      { ...f.body.file, name: "plan.pdf.exe" },
      { ...f.body.file, size: 11, chunkCount: 1 },
    ]) {
      const altered = { ...f, body: { ...f.body, file: changed } } as GroupPayload;
      expect(judge(altered, { state, me: k(cat), from: k(ben), hasSession: all }).kind).toBe("drop");
    }
    // Dan's file forwarded to Cat: Dan's, through Ben; not twice; and not once Dan is removed.
    const fwd = fileItem(dan, 2, 5, cat);
    expect(judge(fwd, { state, me: k(cat), from: k(ben), hasSession: all })).toMatchObject({
      kind: "message",
      author: k(dan),
      forwarded: true,
      file: { readToken: new Uint8Array(32).fill(5) },
    });
    expect(judge(fwd, { state, me: k(ben), from: k(dan), hasSession: all })).toEqual({
      kind: "pass-on",
      to: k(cat),
    });
    expect(judge(fwd, { state, me: k(ben), from: k(ann), hasSession: all })).toMatchObject({
      kind: "drop",
      reason: "a forwarded file not from its author, for someone else",
    });
    const { log } = group();
    log.add(
      signGroupEntry(ann, {
        groupId,
        parent: Buffer.from(state.head, "hex"),
        createdAt: 2,
        op: { op: "remove", member: dan.publicIdentity.signingKey },
      }),
    );
    expect(judge(fwd, { state: log.state()!, me: k(cat), from: k(ben), hasSession: all })).toMatchObject({
      kind: "drop",
      reason: "a forwarded file by someone who is no longer a member",
    });
  });
});

describe("per-author sequence numbers", () => {
  it("drops repeats and counts the gap below the highest that arrived", () => {
    const r = emptySeqs();
    expect(noteSeq(r, 1)).toBe(true);
    expect(noteSeq(r, 4)).toBe(true);
    expect(missingSeqs(r)).toBe(2);
    expect(noteSeq(r, 4)).toBe(false);
    expect(noteSeq(r, 1)).toBe(false);
    expect(noteSeq(r, 0)).toBe(false);
    expect(noteSeq(r, 3)).toBe(true);
    expect(noteSeq(r, 2)).toBe(true);
    expect(r).toEqual({ through: 4, above: [] });
    expect(missingSeqs(r)).toBe(0);
  });
});
