// What to do with a group item that arrived over the session with `from` (PROTOCOL.md §13.3,
// §13.4): every rule that decides whether it is shown, applied, passed on, kept for later or
// dropped, without the store. The caller holds the group's state (null: a group I do not hold) and acts on the verdict.
import {
  decodeGroupEntry,
  type FileManifest,
  type GroupEntry,
  type GroupPayload,
  type GroupState,
  ParleyError,
  toHex,
  verifyGroupFile,
  verifyGroupText,
} from "@parley/protocol";

export type Verdict =
  /**
   * A message by `author` (signing key hex), signature checked; `forwarded` if another member
   * passed it on. A file message (PROTOCOL.md §14.3) has `file`, my copy of its manifest, and no text.
   */
  | {
      readonly kind: "message";
      readonly author: string;
      readonly seq: number;
      readonly text: string;
      readonly forwarded: boolean;
      readonly file?: FileManifest;
    }
  /** A membership entry, signature checked (the log decides whether it applies). */
  | { readonly kind: "entry"; readonly entry: GroupEntry }
  /** `from`'s invitation code, for me: accept it if the code's identity is `identity`. */
  | { readonly kind: "introduction"; readonly from: string; readonly code: string }
  /** Pass the item on, unchanged, to `to` over my session with it. */
  | { readonly kind: "pass-on"; readonly to: string }
  /**
   * Keep it and judge it again once more entries arrive or a session comes up: it names a group I
   * do not hold yet, or someone the log has never named, who may be a member in entries on their
   * way over another session (a new member's first message can overtake the entry that adds it),
   * or it is to be passed on to a member I have no session with yet.
   */
  | { readonly kind: "wait"; readonly reason: string }
  | { readonly kind: "drop"; readonly reason: string };

const drop = (reason: string): Verdict => ({ kind: "drop", reason });
const wait = (reason: string): Verdict => ({ kind: "wait", reason });

/** Whether the log's chain ever named `member`: as an author, in the create, or added. */
export function everNamed(state: GroupState, member: string): boolean {
  return state.applied.some(
    (e) =>
      toHex(e.author.signingKey) === member ||
      (e.op.op === "create" && e.op.members.some((m) => toHex(m.identity.signingKey) === member)) ||
      (e.op.op === "add" && toHex(e.op.member.signingKey) === member),
  );
}

/** Someone not a member now: dropped if the log named them before (removed, gone), else kept. */
const notMember = (state: GroupState, member: string, what: string): Verdict =>
  everNamed(state, member) ? drop(`${what} who is no longer a member`) : wait(`${what} not (yet) a member`);

/**
 * `state` is my current state of the group (null if I hold none), `me` my signing key, `from` the
 * session peer's, `hasSession` whether I have a session with a member. An entry is accepted from
 * anyone holding a session with me, even before I hold the group (a new member receives the log
 * that way): whether it applies is the log's business.
 */
export function judge(
  p: GroupPayload,
  ctx: { state: GroupState | null; me: string; from: string; hasSession: (member: string) => boolean },
): Verdict {
  const b = p.body;
  if (b.kind === "entry") {
    try {
      return { kind: "entry", entry: decodeGroupEntry(b.entry) };
    } catch (e) {
      if (e instanceof ParleyError) return drop(`a malformed membership entry (${e.code})`);
      throw e;
    }
  }
  const { state, me, from } = ctx;
  if (!state) return wait("a group I do not hold (yet)");
  if (!state.members.has(me))
    return everNamed(state, me) ? drop("I am no longer a member") : wait("I am not (yet) a member");
  if (!state.members.has(from)) return notMember(state, from, "from someone");
  const signed = { groupId: p.groupId, id: p.id, sentAt: p.sentAt };
  switch (b.kind) {
    case "text":
      if (!verifyGroupText(hexKey(from), { ...signed, seq: b.seq, text: b.text }, b.signature))
        return drop("a message whose signature is not its sender's");
      return { kind: "message", author: from, seq: b.seq, text: b.text, forwarded: false };
    case "file":
      if (!verifyGroupFile(hexKey(from), { ...signed, seq: b.seq, file: b.file }, b.signature))
        return drop("a file whose signature is not its sender's");
      return { kind: "message", author: from, seq: b.seq, text: "", forwarded: false, file: b.file };
    case "forward":
    case "forward-file": {
      const author = toHex(b.author);
      const to = toHex(b.to);
      const what = b.kind === "forward" ? "message" : "file";
      if (!state.members.has(author)) return notMember(state, author, `a forwarded ${what} by someone`);
      const valid =
        b.kind === "forward"
          ? verifyGroupText(b.author, { ...signed, seq: b.seq, text: b.text }, b.signature)
          : verifyGroupFile(b.author, { ...signed, seq: b.seq, file: b.file }, b.signature);
      if (!valid) return drop(`a forwarded ${what} whose signature is not its author's`);
      if (to === me) {
        const forwarded = from !== author;
        return b.kind === "forward"
          ? { kind: "message", author, seq: b.seq, text: b.text, forwarded }
          : { kind: "message", author, seq: b.seq, text: "", forwarded, file: b.file };
      }
      // Passed on once, from its author only, to a member I have a session with.
      if (from !== author) return drop(`a forwarded ${what} not from its author, for someone else`);
      if (!state.members.has(to)) return drop(`a forwarded ${what} for someone who is not a member`);
      // Until my session with `to` is up (its introduction may be under way), it waits for it.
      if (!ctx.hasSession(to)) return wait(`a forwarded ${what} for a member I have no session with yet`);
      return { kind: "pass-on", to };
    }
    case "introduce": {
      const fromKey = toHex(b.from);
      const to = toHex(b.to);
      if (!state.members.has(fromKey)) return notMember(state, fromKey, "an introduction from someone");
      if (!state.members.has(to)) return notMember(state, to, "an introduction for someone");
      if (to === me) {
        if (fromKey === me) return drop("an introduction to myself");
        return { kind: "introduction", from: fromKey, code: b.code };
      }
      // The new member sends its code to its introducer, who passes it on.
      if (from !== fromKey) return drop("an introduction for someone else, not from its maker");
      if (!ctx.hasSession(to)) return wait("an introduction for a member I have no session with yet");
      return { kind: "pass-on", to };
    }
  }
}

function hexKey(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, "hex"));
}
