// Group membership: a hash-chained log of entries, each signed by a member's identity key
// (PROTOCOL.md §13). Every member applies the same entries in the same order, so every member sees
// the same member list; two entries on the same parent (a fork) are resolved the same way by all.
import { concat, Reader, toHex, utf8, Writer } from "./_bytes.js";
import { label, sha256, verify } from "./crypto.js";
import { DecodeError, GroupError } from "./errors.js";
import {
  decodePublicIdentity,
  encodePublicIdentity,
  type Identity,
  type PublicIdentity,
} from "./identity.js";

export const GROUP_ID_LENGTH = 16;
export const GROUP_ENTRY_VERSION = 1;
/** Members of one group, its creator included. */
export const MAX_GROUP_MEMBERS = 50;
/** A group name, in UTF-8 bytes. */
export const MAX_GROUP_NAME_BYTES = 255;
/** The largest encoded entry: a create naming 49 members with the longest name. */
export const MAX_GROUP_ENTRY_BYTES = 122 + 1 + MAX_GROUP_NAME_BYTES + 1 + 49 * 65 + 64;
const HASH_LENGTH = 32;
const NO_PARENT = new Uint8Array(HASH_LENGTH);

export interface GroupMemberSpec {
  readonly identity: PublicIdentity;
  readonly admin: boolean;
}

/** What an entry does. Members are named by their identity signing key (32 bytes). */
export type GroupOp =
  | { readonly op: "create"; readonly name: string; readonly members: readonly GroupMemberSpec[] }
  | { readonly op: "add"; readonly member: PublicIdentity }
  | { readonly op: "remove"; readonly member: Uint8Array }
  | { readonly op: "leave" }
  | { readonly op: "rename"; readonly name: string }
  | { readonly op: "promote"; readonly member: Uint8Array };

const OP_CODES = { create: 1, add: 2, remove: 3, leave: 4, rename: 5, promote: 6 } as const;
const OP_NAMES = new Map(Object.entries(OP_CODES).map(([k, v]) => [v, k as GroupOp["op"]]));

export interface GroupEntry {
  readonly groupId: Uint8Array;
  /** The hash of the entry this one follows; 32 zero bytes for a create. */
  readonly parent: Uint8Array;
  readonly author: PublicIdentity;
  /** The author's clock, ms since the epoch: shown, never used for ordering. */
  readonly createdAt: number;
  readonly op: GroupOp;
  readonly signature: Uint8Array;
  /** The whole entry as it travels. */
  readonly bytes: Uint8Array;
  /** groupEntryHash(bytes): how children name it. */
  readonly hash: Uint8Array;
}

/** SHA-256("parley/v1/group-entry-hash" || entry bytes, signature included). */
export function groupEntryHash(bytes: Uint8Array): Uint8Array {
  return sha256(concat(label("groupEntryHash"), bytes));
}

function encodeUnsigned(e: Omit<GroupEntry, "signature" | "bytes" | "hash">): Uint8Array {
  if (e.groupId.length !== GROUP_ID_LENGTH) throw new RangeError("groupId: expected 16 bytes");
  if (e.parent.length !== HASH_LENGTH) throw new RangeError("parent: expected 32 bytes");
  const w = new Writer()
    .u8(GROUP_ENTRY_VERSION)
    .bytes(e.groupId)
    .bytes(e.parent)
    .bytes(encodePublicIdentity(e.author))
    .u64(e.createdAt)
    .u8(OP_CODES[e.op.op]);
  const name = (s: string) => {
    const b = utf8.encode(s);
    if (b.length < 1 || b.length > MAX_GROUP_NAME_BYTES)
      throw new RangeError(`group name: 1..${MAX_GROUP_NAME_BYTES} UTF-8 bytes`);
    w.varBytes(b, 1);
  };
  const key = (k: Uint8Array) => {
    if (k.length !== 32) throw new RangeError("member: expected a 32-byte signing key");
    w.bytes(k);
  };
  switch (e.op.op) {
    case "create":
      name(e.op.name);
      if (e.op.members.length > MAX_GROUP_MEMBERS - 1)
        throw new RangeError(`a group has at most ${MAX_GROUP_MEMBERS} members, its creator included`);
      w.u8(e.op.members.length);
      for (const m of e.op.members) w.bytes(encodePublicIdentity(m.identity)).u8(m.admin ? 1 : 0);
      break;
    case "add":
      w.bytes(encodePublicIdentity(e.op.member));
      break;
    case "remove":
    case "promote":
      key(e.op.member);
      break;
    case "rename":
      name(e.op.name);
      break;
    case "leave":
      break;
  }
  return w.finish();
}

function signedBytes(unsigned: Uint8Array): Uint8Array {
  return concat(label("groupEntrySignature"), unsigned);
}

/** Makes an entry signed by `author` (whose public identity becomes the entry's author). */
export function signGroupEntry(
  author: Identity,
  fields: { groupId: Uint8Array; parent?: Uint8Array; createdAt: number; op: GroupOp },
): GroupEntry {
  const parent = fields.parent ?? NO_PARENT;
  if ((fields.op.op === "create") !== (toHex(parent) === toHex(NO_PARENT)))
    throw new RangeError("a create has no parent, and every other entry has one");
  const unsigned = encodeUnsigned({ ...fields, parent, author: author.publicIdentity });
  const signature = author.sign(signedBytes(unsigned));
  return decodeGroupEntry(concat(unsigned, signature));
}

/**
 * Decodes an entry strictly and checks its signature by its author. Malformed bytes are a
 * DecodeError; a signature that does not verify is a GroupError BAD_SIGNATURE.
 */
export function decodeGroupEntry(bytes: Uint8Array): GroupEntry {
  if (bytes.length > MAX_GROUP_ENTRY_BYTES)
    throw new DecodeError(`group entry: ${bytes.length} bytes, more than ${MAX_GROUP_ENTRY_BYTES}`);
  const r = new Reader(bytes, "group entry");
  const version = r.u8("version");
  if (version !== GROUP_ENTRY_VERSION)
    throw new DecodeError(`group entry: unsupported version ${version}`, "UNSUPPORTED_VERSION");
  const groupId = r.bytes(GROUP_ID_LENGTH, "group id");
  const parent = r.bytes(HASH_LENGTH, "parent");
  const author = decodePublicIdentity(r.bytes(64, "author"));
  const createdAt = r.u64("createdAt");
  const code = r.u8("op");
  const kind = OP_NAMES.get(code as 1);
  if (!kind) throw new DecodeError(`group entry: unknown op ${code}`);
  const name = () => {
    const n = r.string(1, "name", MAX_GROUP_NAME_BYTES);
    if (n.length === 0) throw new DecodeError("group entry: empty name");
    return n;
  };
  let op: GroupOp;
  switch (kind) {
    case "create": {
      const groupName = name();
      const count = r.u8("member count");
      if (count > MAX_GROUP_MEMBERS - 1) throw new DecodeError(`group entry: ${count} members`);
      const members: GroupMemberSpec[] = [];
      for (let i = 0; i < count; i++) {
        const identity = decodePublicIdentity(r.bytes(64, "member"));
        const flags = r.u8("member flags");
        if (flags > 1) throw new DecodeError(`group entry: member flags ${flags}`);
        members.push({ identity, admin: flags === 1 });
      }
      op = { op: "create", name: groupName, members };
      break;
    }
    case "add":
      op = { op: "add", member: decodePublicIdentity(r.bytes(64, "member")) };
      break;
    case "remove":
    case "promote":
      op = { op: kind, member: r.bytes(32, "member") };
      break;
    case "rename":
      op = { op: "rename", name: name() };
      break;
    case "leave":
      op = { op: "leave" };
      break;
  }
  const unsignedLength = bytes.length - r.remaining;
  const signature = r.bytes(64, "signature");
  r.end();
  if ((kind === "create") !== (toHex(parent) === toHex(NO_PARENT)))
    throw new DecodeError("group entry: a create has no parent, and every other entry has one");
  if (!verify(author.signingKey, signedBytes(bytes.subarray(0, unsignedLength)), signature))
    throw new GroupError("BAD_SIGNATURE", "group entry: the author's signature does not verify");
  const copy = Uint8Array.from(bytes);
  return { groupId, parent, author, createdAt, op, signature, bytes: copy, hash: groupEntryHash(copy) };
}

// ---- the log ----------------------------------------------------------------------------------

export interface GroupMember {
  readonly identity: PublicIdentity;
  readonly admin: boolean;
  /** Signing key (hex) of the admin whose entry added this member (the creator's for the first). */
  readonly addedBy: string;
  /** Position in the order members joined: 0 the creator, then the create's list, then adds. */
  readonly joined: number;
}

/** Why a valid-looking entry was not applied. */
export type RejectReason =
  | "not-member"
  | "not-admin"
  | "is-member"
  | "is-admin"
  | "not-a-member"
  | "full"
  | "self";

export interface GroupState {
  readonly groupId: Uint8Array;
  readonly name: string;
  /** Signing key (hex) → member, in joining order. */
  readonly members: ReadonlyMap<string, GroupMember>;
  /** Hash (hex) of the last applied entry: the parent of the next one. */
  readonly head: string;
  /** Applied entries, in order. */
  readonly applied: readonly GroupEntry[];
  /** At each fork: the entry applied and the valid ones that lost to it (lowest hash wins). */
  readonly forks: readonly { readonly winner: GroupEntry; readonly losers: readonly GroupEntry[] }[];
  /** Entries on the chain's path that were refused under the state at their parent, and why. */
  readonly rejected: readonly { readonly entry: GroupEntry; readonly reason: RejectReason }[];
}

const hex = (b: Uint8Array) => toHex(b);
const byHash = (a: GroupEntry, b: GroupEntry) => (hex(a.hash) < hex(b.hash) ? -1 : 1);

/**
 * Every entry received for one group. Entries may arrive in any order and more than once; the
 * state is a function of the set alone: from the create (the lowest-hash one, should there be
 * several), the chain follows, at each entry, the child with the lowest hash among those valid at
 * that point. Entries whose parent is unknown wait until it arrives.
 */
export class GroupLog {
  private readonly entries = new Map<string, GroupEntry>();

  constructor(readonly groupId: Uint8Array) {
    if (groupId.length !== GROUP_ID_LENGTH) throw new RangeError("groupId: expected 16 bytes");
  }

  /** "added", "known" (already held) or "other-group". */
  add(entry: GroupEntry): "added" | "known" | "other-group" {
    if (hex(entry.groupId) !== hex(this.groupId)) return "other-group";
    const key = hex(entry.hash);
    if (this.entries.has(key)) return "known";
    this.entries.set(key, entry);
    return "added";
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every entry held, in no particular order (what a new member is sent). */
  all(): GroupEntry[] {
    return [...this.entries.values()];
  }

  /** The state after the chain, or null while no create is held. */
  state(): GroupState | null {
    const children = new Map<string, GroupEntry[]>();
    for (const e of this.entries.values()) {
      const k = hex(e.parent);
      const list = children.get(k);
      if (list) list.push(e);
      else children.set(k, [e]);
    }
    const roots = (children.get(hex(NO_PARENT)) ?? []).sort(byHash);
    const root = roots[0];
    if (root?.op.op !== "create") return null;
    const s = startState(root);
    const forks: { winner: GroupEntry; losers: GroupEntry[] }[] = [];
    const rejected: { entry: GroupEntry; reason: RejectReason }[] = [];
    const applied = [root];
    let at = root;
    for (;;) {
      const next = (children.get(hex(at.hash)) ?? []).sort(byHash);
      const valid: GroupEntry[] = [];
      for (const e of next) {
        const reason = refusal(s, e);
        if (reason) rejected.push({ entry: e, reason });
        else valid.push(e);
      }
      const winner = valid[0];
      if (!winner) break;
      if (valid.length > 1) forks.push({ winner, losers: valid.slice(1) });
      apply(s, winner);
      applied.push(winner);
      at = winner;
    }
    return {
      groupId: this.groupId,
      name: s.name,
      members: s.members,
      head: hex(at.hash),
      applied,
      forks,
      rejected,
    };
  }
}

interface Mutable {
  name: string;
  members: Map<string, GroupMember>;
  joined: number;
}

function startState(create: GroupEntry): Mutable {
  if (create.op.op !== "create") throw new Error("not a create");
  const creator = hex(create.author.signingKey);
  const members = new Map<string, GroupMember>();
  members.set(creator, { identity: create.author, admin: true, addedBy: creator, joined: 0 });
  let joined = 1;
  for (const m of create.op.members) {
    const k = hex(m.identity.signingKey);
    if (members.has(k)) continue; // listed twice, or the creator listed: once is enough
    members.set(k, { identity: m.identity, admin: m.admin, addedBy: creator, joined: joined++ });
  }
  return { name: create.op.name, members, joined };
}

/** Why `e` cannot follow the state `s`, or null if it can. */
function refusal(s: Mutable, e: GroupEntry): RejectReason | null {
  const author = s.members.get(hex(e.author.signingKey));
  if (!author) return "not-member";
  const op = e.op;
  if (op.op === "leave") return null;
  if (op.op === "create") return "not-admin"; // a second create is never a child
  if (!author.admin) return "not-admin";
  switch (op.op) {
    case "add":
      if (s.members.has(hex(op.member.signingKey))) return "is-member";
      if (s.members.size >= MAX_GROUP_MEMBERS) return "full";
      return null;
    case "remove":
      if (hex(op.member) === hex(e.author.signingKey)) return "self";
      return s.members.has(hex(op.member)) ? null : "not-a-member";
    case "promote": {
      const m = s.members.get(hex(op.member));
      if (!m) return "not-a-member";
      return m.admin ? "is-admin" : null;
    }
    case "rename":
      return null;
  }
}

function apply(s: Mutable, e: GroupEntry): void {
  const author = hex(e.author.signingKey);
  const op = e.op;
  switch (op.op) {
    case "add":
      s.members.set(hex(op.member.signingKey), {
        identity: op.member,
        admin: false,
        addedBy: author,
        joined: s.joined++,
      });
      break;
    case "remove":
      s.members.delete(hex(op.member));
      break;
    case "leave":
      s.members.delete(author);
      break;
    case "promote": {
      const k = hex(op.member);
      s.members.set(k, { ...s.members.get(k)!, admin: true });
      break;
    }
    case "rename":
      s.name = op.name;
      break;
    case "create":
      break;
  }
  // A group always has an admin while it has members: when the last one goes, the member who
  // joined first becomes one.
  if (s.members.size > 0 && ![...s.members.values()].some((m) => m.admin)) {
    const first = [...s.members.entries()].sort((a, b) => a[1].joined - b[1].joined)[0]!;
    s.members.set(first[0], { ...first[1], admin: true });
  }
}
