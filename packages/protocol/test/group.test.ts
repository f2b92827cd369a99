// Groups (PROTOCOL.md §13): membership entries, the log every member computes the same state from,
// and the group payloads of §7.1 type 4.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildGroups } from "../scripts/kat-groups.js";
import {
  DecodeError,
  decodeGroupEntry,
  decodePayload,
  encodePayload,
  fromHex,
  GroupError,
  GroupLog,
  type GroupOp,
  type GroupPayload,
  groupEntryHash,
  groupTextSignedBytes,
  Identity,
  MAX_GROUP_MEMBERS,
  MAX_GROUP_TEXT_BYTES,
  PayloadError,
  signGroupEntry,
  toHex,
  verifyGroupText,
} from "../src/index.js";

const people = Array.from({ length: 8 }, () => Identity.generate());
const [ann, ben, cat, dan, eve] = people as [Identity, Identity, Identity, Identity, Identity];
const groupId = new Uint8Array(16).fill(7);
const key = (i: Identity) => i.publicIdentity.signingKey;
const hex = (i: Identity) => toHex(key(i));
let clock = 1_000;
const entry = (author: Identity, op: GroupOp, parent?: Uint8Array) =>
  signGroupEntry(author, { groupId, op, createdAt: clock++, ...(parent ? { parent } : {}) });
const created = entry(ann, {
  op: "create",
  name: "Trip",
  members: [
    { identity: ben.publicIdentity, admin: true },
    { identity: cat.publicIdentity, admin: false },
  ],
});
const members = (log: GroupLog) => [...log.state()!.members.keys()].sort();

describe("group entries (§13.1)", () => {
  it("round-trip, with the author's signature checked and the hash over every byte", () => {
    const again = decodeGroupEntry(created.bytes);
    expect(toHex(again.hash)).toBe(toHex(groupEntryHash(created.bytes)));
    expect(again.op).toEqual(created.op);
    expect(again.bytes[0]).toBe(1);
    expect(toHex(again.parent)).toBe("00".repeat(32));
    // Any flipped byte is refused: a signature that no longer verifies, or a malformed field.
    for (let i = 0; i < created.bytes.length; i += 7) {
      const bad = Uint8Array.from(created.bytes);
      bad[i]! ^= 0x20;
      expect(() => decodeGroupEntry(bad)).toThrow(i === 0 ? DecodeError : Error);
    }
    const sigFlip = Uint8Array.from(created.bytes);
    sigFlip[sigFlip.length - 1]! ^= 1;
    expect(() => decodeGroupEntry(sigFlip)).toThrow(GroupError);
    expect(() => decodeGroupEntry(created.bytes.subarray(0, created.bytes.length - 1))).toThrow(DecodeError);
    expect(() => decodeGroupEntry(Uint8Array.of(...created.bytes, 0))).toThrow(DecodeError);
  });

  it("a create has no parent and every other entry has one", () => {
    expect(() => entry(ann, { op: "leave" })).toThrow(RangeError);
    expect(() => entry(ann, { op: "create", name: "x", members: [] }, created.hash)).toThrow(RangeError);
    expect(() => entry(ann, { op: "rename", name: "" }, created.hash)).toThrow(RangeError);
    const tooMany = people.concat(Array.from({ length: MAX_GROUP_MEMBERS }, () => Identity.generate()));
    expect(() =>
      entry(ann, {
        op: "create",
        name: "big",
        members: tooMany
          .slice(1, MAX_GROUP_MEMBERS + 1)
          .map((p) => ({ identity: p.publicIdentity, admin: false })),
      }),
    ).toThrow(RangeError);
  });
});

describe("the membership log (§13.2)", () => {
  it("applies adds, removes, renames, promotions and leaves by their rules", () => {
    const log = new GroupLog(groupId);
    log.add(created);
    expect(members(log)).toEqual([hex(ann), hex(ben), hex(cat)].sort());
    const add = entry(ben, { op: "add", member: dan.publicIdentity }, created.hash);
    const byCat = entry(cat, { op: "add", member: eve.publicIdentity }, created.hash);
    log.add(byCat);
    log.add(add);
    const s = log.state()!;
    // Cat is no admin: her add is refused, Ben's applies.
    expect(s.rejected.map((r) => [toHex(r.entry.hash), r.reason])).toEqual([
      [toHex(byCat.hash), "not-admin"],
    ]);
    expect(s.members.get(hex(dan))).toMatchObject({ admin: false, addedBy: hex(ben) });
    const remove = entry(ann, { op: "remove", member: key(ben) }, add.hash);
    log.add(remove);
    expect(members(log)).toEqual([hex(ann), hex(cat), hex(dan)].sort());
    // Ben, removed, can no longer change anything.
    const late = entry(ben, { op: "rename", name: "Mine" }, remove.hash);
    log.add(late);
    expect(log.state()!.rejected.at(-1)).toMatchObject({ reason: "not-member" });
    const promote = entry(ann, { op: "promote", member: key(cat) }, remove.hash);
    log.add(promote);
    const rename = entry(cat, { op: "rename", name: "Trip 2" }, promote.hash);
    log.add(rename);
    expect(log.state()!.name).toBe("Trip 2");
    expect(log.state()!.head).toBe(toHex(rename.hash));
  });

  it("when the last admin leaves, the member who joined first becomes one", () => {
    const log = new GroupLog(groupId);
    const solo = entry(ann, {
      op: "create",
      name: "x",
      members: [
        { identity: cat.publicIdentity, admin: false },
        { identity: dan.publicIdentity, admin: false },
      ],
    });
    log.add(solo);
    log.add(entry(ann, { op: "leave" }, solo.hash));
    const s = log.state()!;
    expect([...s.members.values()].map((m) => [toHex(m.identity.signingKey), m.admin])).toEqual([
      [hex(cat), true],
      [hex(dan), false],
    ]);
  });

  it("waits for a missing parent, ignores duplicates and other groups", () => {
    const log = new GroupLog(groupId);
    const add = entry(ann, { op: "add", member: dan.publicIdentity }, created.hash);
    expect(log.add(add)).toBe("added");
    expect(log.state()).toBeNull();
    expect(log.add(created)).toBe("added");
    expect(log.add(created)).toBe("known");
    const other = signGroupEntry(ann, {
      groupId: new Uint8Array(16),
      createdAt: 1,
      op: { op: "create", name: "y", members: [] },
    });
    expect(log.add(other)).toBe("other-group");
    expect(members(log)).toContain(hex(dan));
  });

  it("resolves a fork by the lower hash, whatever the order, and shows it", () => {
    const a = entry(ann, { op: "remove", member: key(cat) }, created.hash);
    const b = entry(ben, { op: "add", member: dan.publicIdentity }, created.hash);
    const [win, lose] = toHex(a.hash) < toHex(b.hash) ? [a, b] : [b, a];
    for (const order of [
      [created, a, b],
      [b, a, created],
    ]) {
      const log = new GroupLog(groupId);
      for (const e of order) log.add(e);
      const s = log.state()!;
      expect(s.head).toBe(toHex(win.hash));
      expect(s.forks.map((f) => [toHex(f.winner.hash), f.losers.map((l) => toHex(l.hash))])).toEqual([
        [toHex(win.hash), [toHex(lose.hash)]],
      ]);
    }
  });

  it("property: concurrent changes from every member's own view converge to one member list", () => {
    type Action = { actor: number; kind: GroupOp["op"]; target: number; deliverTo: number[] };
    const action = fc.record({
      actor: fc.nat(7),
      kind: fc.constantFrom<GroupOp["op"]>("add", "remove", "leave", "rename", "promote"),
      target: fc.nat(7),
      deliverTo: fc.array(fc.nat(7), { maxLength: 8 }),
    });
    fc.assert(
      fc.property(fc.array(action, { minLength: 1, maxLength: 40 }), fc.nat(), (actions: Action[], seed) => {
        const first = signGroupEntry(people[0]!, {
          groupId,
          createdAt: 0,
          op: {
            op: "create",
            name: "g",
            members: [1, 2, 3].map((i) => ({ identity: people[i]!.publicIdentity, admin: i === 1 })),
          },
        });
        // Each person's view: the entries they have received so far.
        const views = people.map(() => new GroupLog(groupId));
        for (const v of views) v.add(first);
        const everything = [first];
        for (const [n, a] of actions.entries()) {
          const view = views[a.actor]!;
          const s = view.state()!;
          const me = s.members.get(toHex(key(people[a.actor]!)));
          if (!me) continue; // not a member in their own view: they send nothing
          const target = people[a.target]!;
          const op: GroupOp =
            a.kind === "add"
              ? { op: "add", member: target.publicIdentity }
              : a.kind === "remove" || a.kind === "promote"
                ? { op: a.kind, member: key(target) }
                : a.kind === "rename"
                  ? { op: "rename", name: `name ${n}` }
                  : { op: "leave" };
          // Authored on the author's head, valid or not in the end: the log decides.
          const e = signGroupEntry(people[a.actor]!, {
            groupId,
            createdAt: n,
            op,
            parent: fromHex(s.head),
          });
          everything.push(e);
          view.add(e);
          for (const to of a.deliverTo) views[to]!.add(e);
        }
        // Finally everyone gets everything, each in a different order.
        const rng = seed;
        for (const [i, v] of views.entries()) {
          const order = [...everything].sort(
            (x, y) => ((x.hash[0]! ^ (rng + i)) & 0xff) - ((y.hash[0]! ^ (rng + i)) & 0xff),
          );
          for (const e of order) v.add(e);
        }
        const states = views.map((v) => v.state()!);
        const summary = (s: (typeof states)[number]) =>
          JSON.stringify([s.head, s.name, [...s.members.entries()].map(([k, m]) => [k, m.admin])]);
        for (const s of states) expect(summary(s)).toBe(summary(states[0]!));
        // The rules hold on the agreed state: bounded size, an admin while there are members, and
        // every applied entry after the create was made by a member of the state before it.
        const s = states[0]!;
        expect(s.members.size).toBeLessThanOrEqual(MAX_GROUP_MEMBERS);
        if (s.members.size > 0) expect([...s.members.values()].some((m) => m.admin)).toBe(true);
        expect(s.applied[0]).toBe(first);
      }),
      { numRuns: 60 },
    );
  });
});

describe("group payloads (§7.1 type 4, §13.3)", () => {
  const sentAt = 1_764_720_000_000;
  const id = new Uint8Array(16).fill(3);
  const signed = { groupId, id, sentAt, seq: 7, text: "hello group" };
  const signature = ann.sign(groupTextSignedBytes(signed));

  it("each kind round-trips through padding, and a text's signature is the author's", () => {
    const bodies: GroupPayload["body"][] = [
      { kind: "text", seq: 7, text: "hello group", signature },
      { kind: "entry", entry: created.bytes },
      { kind: "introduce", from: key(dan), to: key(cat), code: "PARLEY1-CODE" },
      { kind: "forward", author: key(ann), to: key(dan), seq: 7, text: "hello group", signature },
    ];
    for (const body of bodies) {
      const p: GroupPayload = { type: "group", id, sentAt, groupId, body };
      expect(decodePayload(encodePayload(p))).toEqual(p);
    }
    expect(verifyGroupText(key(ann), signed, signature)).toBe(true);
    expect(verifyGroupText(key(ben), signed, signature)).toBe(false);
    expect(verifyGroupText(key(ann), { ...signed, seq: 8 }, signature)).toBe(false);
    expect(verifyGroupText(key(ann), { ...signed, text: "hello grouP" }, signature)).toBe(false);
    expect(verifyGroupText(key(ann), { ...signed, groupId: new Uint8Array(3) }, signature)).toBe(false);
  });

  it("the longest group text still fits the largest bucket when forwarded; one byte more is refused", () => {
    const text = "x".repeat(MAX_GROUP_TEXT_BYTES);
    const forward: GroupPayload = {
      type: "group",
      id,
      sentAt,
      groupId,
      body: { kind: "forward", author: key(ann), to: key(dan), seq: 1, text, signature },
    };
    expect(encodePayload(forward).length).toBe(32768);
    const tooLong = { ...forward, body: { ...forward.body, text: `${text}x` } } as GroupPayload;
    expect(() => encodePayload(tooLong)).toThrow(PayloadError);
  });

  it("refuses unknown kinds, empty entries and codes, and trailing bytes", () => {
    const p: GroupPayload = {
      type: "group",
      id,
      sentAt,
      groupId,
      body: { kind: "entry", entry: created.bytes },
    };
    const padded = encodePayload(p);
    const kindAt = 26 + 16;
    for (const kind of [0, 7, 255]) {
      const bad = Uint8Array.from(padded);
      bad[kindAt] = kind;
      expect(() => decodePayload(bad)).toThrow(PayloadError);
    }
    expect(() => encodePayload({ ...p, body: { kind: "entry", entry: new Uint8Array(0) } })).toThrow(
      RangeError,
    );
    expect(() =>
      encodePayload({ ...p, body: { kind: "introduce", from: key(ann), to: key(ben), code: "" } }),
    ).toThrow(RangeError);
  });
});

describe("group known answers (vectors/kat.json `groups`)", () => {
  const committed = JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8")).groups;

  it("the committed vectors are exactly what the generator makes", () => {
    expect(JSON.parse(JSON.stringify(buildGroups().groups))).toEqual(committed);
  });

  it("every entry decodes, verifies and hashes as recorded, and the log gives the recorded state", () => {
    const log = new GroupLog(fromHex(committed.groupId));
    for (const e of committed.entries as { bytes: string; hash: string; op: string }[]) {
      const decoded = decodeGroupEntry(fromHex(e.bytes));
      expect(toHex(decoded.hash)).toBe(e.hash);
      expect(decoded.op.op).toBe(e.op);
      log.add(decoded);
    }
    const s = log.state()!;
    expect(s.head).toBe(committed.state.head);
    expect(s.name).toBe(committed.state.name);
    expect(s.applied.map((e) => toHex(e.hash))).toEqual(committed.state.applied);
    expect(
      [...s.members.values()].map((m) => ({ signingKey: toHex(m.identity.signingKey), admin: m.admin })),
    ).toEqual(committed.state.members);
    expect(s.rejected.map((r) => ({ hash: toHex(r.entry.hash), reason: r.reason }))).toEqual(
      committed.state.rejected,
    );
  });

  it("the recorded group text signature verifies over the recorded signed bytes", () => {
    const t = committed.text;
    const m = { groupId: fromHex(t.groupId), id: fromHex(t.id), sentAt: t.sentAt, seq: t.seq, text: t.text };
    expect(toHex(groupTextSignedBytes(m))).toBe(t.signedBytes);
    expect(verifyGroupText(fromHex(committed.members.ann.signingKey), m, fromHex(t.signature))).toBe(true);
    for (const p of committed.payloads as { body: string; padded: string }[]) {
      const decoded = decodePayload(fromHex(p.padded));
      expect(decoded.type === "group" && decoded.body.kind).toBe(p.body);
      expect(toHex(encodePayload(decoded))).toBe(p.padded);
    }
  });
});
