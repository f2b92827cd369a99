// Known answers for groups (PROTOCOL.md §13): membership entries with their hashes, a log with a
// fork, and group payloads, all from fixed identities (every signature here is deterministic); and
// a group file (§14.3): one signature over the manifest with its read token zeroed, and two
// members' copies, one of them forwarded.
import { sha256 } from "@noble/hashes/sha2.js";
import {
  encodePayload,
  type FileManifest,
  fileChunkCount,
  fingerprint,
  GroupLog,
  type GroupOp,
  groupFileSignedBytes,
  groupTextSignedBytes,
  Identity,
  type Payload,
  signGroupEntry,
  toHex,
} from "../src/index.js";
import { patterned } from "./kat-files.js";
import { katValue, scripted } from "./kat-transcript.js";

const NOW = 1_764_720_000_000;

export function buildGroups(): Record<string, unknown> {
  const random: Record<string, string> = {};
  const person = (name: string) =>
    Identity.generate(scripted(random, `group/${name}/signing-seed`, `group/${name}/agreement-secret`));
  const ann = person("ann");
  const ben = person("ben");
  const cat = person("cat");
  const dan = person("dan");
  const groupId = katValue("group/id", 16);
  const entry = (author: Identity, op: GroupOp, parent: Uint8Array | undefined, at: number) =>
    signGroupEntry(author, { groupId, op, createdAt: NOW + at, ...(parent ? { parent } : {}) });

  const create = entry(
    ann,
    {
      op: "create",
      name: "Trip 🚲",
      members: [
        { identity: ben.publicIdentity, admin: true },
        { identity: cat.publicIdentity, admin: false },
      ],
    },
    undefined,
    0,
  );
  const add = entry(ann, { op: "add", member: dan.publicIdentity }, create.hash, 1000);
  // A fork: on the add, Ben removes Cat while Ann renames the group. The lower hash wins; the
  // other is shown as lost.
  const remove = entry(ben, { op: "remove", member: cat.publicIdentity.signingKey }, add.hash, 2000);
  const rename = entry(ann, { op: "rename", name: "Trip 2027" }, add.hash, 2000);
  // Cat (not an admin) tries to promote herself after the add: refused.
  const promote = entry(cat, { op: "promote", member: cat.publicIdentity.signingKey }, add.hash, 2500);
  const log = new GroupLog(groupId);
  for (const e of [promote, rename, remove, add, create]) log.add(e);
  const state = log.state()!;
  const winner = state.forks[0]!.winner;
  const leave = entry(dan, { op: "leave" }, winner.hash, 3000);
  log.add(leave);
  const final = log.state()!;

  const text = {
    groupId,
    id: katValue("group/msg/id", 16),
    sentAt: NOW + 4000,
    seq: 1,
    text: "See you at 9.",
  };
  const signature = ann.sign(groupTextSignedBytes(text));
  const payloads: Payload[] = [
    {
      type: "group",
      id: text.id,
      sentAt: text.sentAt,
      groupId,
      body: { kind: "text", seq: 1, text: text.text, signature },
    },
    {
      type: "group",
      id: katValue("group/entry-msg/id", 16),
      sentAt: NOW + 1000,
      groupId,
      body: { kind: "entry", entry: add.bytes },
    },
    {
      type: "group",
      id: katValue("group/intro-msg/id", 16),
      sentAt: NOW + 1500,
      groupId,
      body: {
        kind: "introduce",
        from: dan.publicIdentity.signingKey,
        to: cat.publicIdentity.signingKey,
        code: "PARLEY1-EXAMPLE-CODE",
      },
    },
    {
      type: "group",
      id: text.id,
      sentAt: text.sentAt,
      groupId,
      body: {
        kind: "forward",
        author: ann.publicIdentity.signingKey,
        to: dan.publicIdentity.signingKey,
        seq: 1,
        text: text.text,
        signature,
      },
    },
  ];
  const who = (i: Identity) => ({
    signingKey: i.publicIdentity.signingKey,
    agreementKey: i.publicIdentity.agreementKey,
    fingerprint: fingerprint(i.publicIdentity),
  });
  const described = (e: typeof create, note: string) => ({ note, op: e.op.op, bytes: e.bytes, hash: e.hash });
  return jsonable({
    groupFiles: groupFile(groupId, ann, ben, dan),
    groups: {
      description:
        "PROTOCOL.md §13: membership entries (bytes include the signature; hash = SHA-256('parley/v1/group-entry-hash' || bytes)), the state a member computes from them, and group payloads (§7.1 type 4). Identities are drawn as `random` names them.",
      random,
      groupId,
      members: { ann: who(ann), ben: who(ben), cat: who(cat), dan: who(dan) },
      entries: [
        described(create, "Ann creates the group with Ben (admin) and Cat"),
        described(add, "Ann adds Dan"),
        described(remove, "Ben removes Cat, on the add (a fork with the rename)"),
        described(rename, "Ann renames the group, on the add (a fork with the remove)"),
        described(promote, "Cat promotes herself, on the add: refused (not an admin)"),
        described(leave, "Dan leaves, on the fork's winner"),
      ],
      state: {
        name: final.name,
        head: final.head,
        applied: final.applied.map((e) => e.hash),
        members: [...final.members.values()].map((m) => ({
          signingKey: m.identity.signingKey,
          admin: m.admin,
        })),
        forks: final.forks.map((f) => ({ winner: f.winner.hash, losers: f.losers.map((l) => l.hash) })),
        rejected: final.rejected.map((r) => ({ hash: r.entry.hash, reason: r.reason })),
      },
      text: { ...text, signedBytes: groupTextSignedBytes(text), signature },
      payloads: payloads.map((p) => ({
        body: p.type === "group" ? p.body.kind : p.type,
        padded: encodePayload(p),
      })),
    },
  }) as Record<string, unknown>;
}

/**
 * Ann's file to the group (§14.3): the 3-byte file of `files` (bytes i mod 251, the same file key),
 * with seq 2 after her text; Ben's copy as she sends it to him (kind 5) and Dan's as it travels
 * forwarded (kind 6, as a member with no session with Dan yet sends it to the member who passes it
 * on), each with its own read token under the one signature.
 */
function groupFile(
  groupId: Uint8Array,
  ann: Identity,
  ben: Identity,
  dan: Identity,
): Record<string, unknown> {
  const sentAt = NOW + 5000;
  const id = katValue("group-file/message-id", 16);
  const readTokens = {
    ben: katValue("group-file/read-token/ben"),
    dan: katValue("group-file/read-token/dan"),
  };
  const file: FileManifest = {
    name: "plan.txt",
    mediaType: "text/plain",
    size: 3,
    sha256: sha256(patterned(3)),
    chunkCount: fileChunkCount(3),
    relay: "wss://relay.example:8443/parley",
    blobId: katValue("group-file/blob-id"),
    readToken: readTokens.ben,
    fileKey: katValue("file/key"),
    expiresAt: sentAt + 7 * 86_400_000,
  };
  const signed = { groupId, id, sentAt, seq: 2, file };
  const signature = ann.sign(groupFileSignedBytes(signed));
  const common = { type: "group", id, sentAt, groupId } as const;
  const toBen: Payload = { ...common, body: { kind: "file", seq: 2, file, signature } };
  const toDan: Payload = {
    ...common,
    body: {
      kind: "forward-file",
      author: ann.publicIdentity.signingKey,
      to: dan.publicIdentity.signingKey,
      seq: 2,
      file: { ...file, readToken: readTokens.dan },
      signature,
    },
  };
  const { readToken: _mine, ...fields } = file;
  return {
    description:
      "PROTOCOL.md §14.3: a group file item (§13.3 kind 5) and a forwarded one (kind 6) in the group of `groups`, by Ann. The file is the 3-byte file of `files`; blobId, read tokens = SHA-256('parley-kat/group-file/blob-id' | '.../read-token/<member>'), message id = the first 16 bytes of SHA-256('parley-kat/group-file/message-id'). `signedBytes` (read token zeroed) and `signature` are the same in every copy.",
    groupId,
    author: ann.publicIdentity.signingKey,
    id,
    sentAt,
    seq: 2,
    file: fields,
    readTokens,
    signedBytes: groupFileSignedBytes(signed),
    signature,
    payloads: [
      { kind: "file", to: ben.publicIdentity.signingKey, padded: encodePayload(toBen) },
      { kind: "forward-file", to: dan.publicIdentity.signingKey, padded: encodePayload(toDan) },
    ],
  };
}

/** Byte arrays as hex, recursively. */
function jsonable(v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(jsonable);
  if (v && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x)]));
  return v;
}
