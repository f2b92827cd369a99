// Introductions (PROTOCOL.md §13.4): two members of a group who have no session of their own get
// one. The one who joined later makes a one-time invitation for the other and sends it, as an
// introduce item, to the admin who added it, who passes it on; the other accepts the code if its
// identity is the member's in the group's state. The session it opens is group-scoped: not a
// contact until the user makes it one. Until it is up, their messages are forwarded through that
// admin (group-send.ts). What is owed is noted in the group's record inside the transaction that
// learns of it; the invitations and acceptances, which talk to relays, run afterwards (run()).
import {
  decodeInvitation,
  fromHex,
  type GroupState,
  InvitationError,
  samePublicIdentity,
} from "@parley/protocol";
import { ClientError } from "../errors.js";
import type { GroupRecord } from "../store/records.js";
import { type Context, warn } from "./context.js";
import type { Peers } from "./group-peers.js";
import type { IntroductionSink } from "./group-receive.js";
import { type GroupSend, groupItem } from "./group-send.js";
import type { Groups } from "./groups.js";
import type { Invitations } from "./invitations.js";

export class GroupIntroductions implements IntroductionSink {
  /** Something is owed: run() has work. */
  due = false;
  private running: Promise<void> | null = null;

  constructor(
    private readonly ctx: Context,
    private readonly groups: Groups,
    private readonly invitations: Pick<Invitations, "invite" | "accept">,
    private readonly send: Pick<GroupSend, "item">,
  ) {}

  /**
   * Notes, in `g` (the caller writes it), the members I owe an invitation: those who joined
   * before me and with whom I have no session. Inside a transaction.
   */
  owe(peers: Peers, g: GroupRecord, state: GroupState): void {
    const me = this.groups.me;
    const mine = state.members.get(me);
    const keep = (m: string) => state.members.has(m) && !peers.has(m);
    g.invites = (g.invites ?? []).filter((i) => keep(i.member));
    g.accepts = (g.accepts ?? []).filter((a) => keep(a.member));
    if (!mine) {
      g.invites = [];
      g.accepts = [];
      return;
    }
    for (const [k, m] of state.members) {
      if (k === me || m.joined > mine.joined || !keep(k) || g.invites.some((i) => i.member === k)) continue;
      g.invites.push({ member: k });
    }
    if (g.invites.some((i) => i.expiresAt === undefined || i.expiresAt <= Date.now()) || g.accepts.length > 0)
      this.due = true;
  }

  /** An introduction for me arrived (group-receive.ts): its code is kept for run(). In a transaction. */
  introduced(key: string, from: string, code: string): void {
    const g = this.groups.get(key);
    const state = g ? this.groups.state(g) : null;
    const member = state?.members.get(from);
    if (!g || !member) return;
    let identity: ReturnType<typeof decodeInvitation>["identity"];
    try {
      identity = decodeInvitation(code).identity;
    } catch (e) {
      if (!(e instanceof InvitationError)) throw e;
      warn(this.ctx, `dropped an introduction in ${g.name}: its invitation code is bad (${e.code})`);
      return;
    }
    // Only the member it claims to come from may open a session this way.
    if (!samePublicIdentity(identity, member.identity)) {
      warn(this.ctx, `dropped an introduction in ${g.name}: its code is not the member's own`);
      return;
    }
    if (this.groups.peers().has(from) || g.accepts?.some((a) => a.code === code)) return;
    g.accepts = [...(g.accepts ?? []).filter((a) => a.member !== from), { member: from, code }];
    this.groups.put(key, g);
    this.due = true;
  }

  /** Makes the invitations owed and accepts the codes received; one run at a time. */
  run(): Promise<void> {
    if (!this.due) return this.running ?? Promise.resolve();
    this.running ??= this.runOnce().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async runOnce(): Promise<void> {
    this.due = false;
    const now = Date.now();
    for (const { key, value: g } of this.groups.all()) {
      // A session that came up meanwhile (the other side's invitation was accepted) settles it.
      const peers = this.groups.peers();
      for (const i of g.invites ?? []) {
        if (peers.has(i.member) || (i.expiresAt !== undefined && i.expiresAt > now)) continue;
        if (!(await this.invite(key, g.groupId, i.member))) return;
      }
      for (const a of g.accepts ?? []) await this.accept(key, a.member, a.code);
    }
  }

  /** One invitation for `member`, sent to the admin who added me. False when no relay took it. */
  private async invite(key: string, groupId: string, member: string): Promise<boolean> {
    let made: { code: string; expiresAt: number };
    try {
      made = await this.invitations.invite({ group: { groupId, member } });
    } catch (e) {
      if (!(e instanceof ClientError)) throw e;
      this.due = true;
      warn(this.ctx, `could not make an invitation for a group member yet: ${e.message}`);
      return false;
    }
    this.ctx.tx(() => {
      const g = this.groups.get(key);
      const state = g ? this.groups.state(g) : null;
      const adder = state?.members.get(this.groups.me)?.addedBy;
      const owed = g?.invites?.find((i) => i.member === member);
      if (!g || !state || adder === undefined || !owed) return;
      const peers = this.groups.peers();
      const item = groupItem(g.groupId, {
        kind: "introduce",
        from: this.ctx.identity.publicIdentity.signingKey,
        to: fromHex(member),
        code: made.code,
      });
      if (!this.send.item(peers, key, adder, item)) return;
      owed.expiresAt = made.expiresAt;
      this.groups.put(key, g);
      peers.save();
    });
    return true;
  }

  /** Accepts a member's code: a group-scoped session. Kept for another run if no relay answered. */
  private async accept(key: string, member: string, code: string): Promise<void> {
    try {
      if (!this.groups.peers().has(member)) await this.invitations.accept(code, { groupScoped: true });
    } catch (e) {
      if (!(e instanceof ClientError)) throw e;
      // The session was made and its handshake waits in the outbox: done. A relay that did not
      // answer before it was made: another run. Anything else (a used or expired code): given up.
      if (!this.groups.peers().has(member)) {
        if (e.code === "UNREACHABLE") {
          this.due = true;
          return;
        }
        warn(this.ctx, `could not accept a group member's invitation: ${e.message}`);
      }
    }
    this.ctx.tx(() => {
      const g = this.groups.get(key);
      if (!g) return;
      g.accepts = (g.accepts ?? []).filter((a) => a.code !== code);
      this.groups.put(key, g);
    });
  }
}
