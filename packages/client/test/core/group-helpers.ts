// For the group modules' tests: whole client cores (core/assemble.ts) over real stores, with real
// pairwise sessions made by the handshake, and a wire that carries each core's outbox to the core
// that owns the mailbox, through its real receiving path (Inbox), instead of a relay.
import {
  acceptInvitation,
  createInvitation,
  decodeInvitation,
  encodePayload,
  encodePublicIdentity,
  fromHex,
  InvitationBook,
  MailboxKey,
  toHex,
} from "@parley/protocol";
import { assemble, type Core } from "../../src/core/assemble.js";
import { introPayload } from "../../src/core/invitations.js";
import type { ClientEvent } from "../../src/core/types.js";
import type { RelayConnection } from "../../src/relay-connection.js";
import type { ContactRecord } from "../../src/store.js";
import { type Harness, harness } from "./helpers.js";

const RELAY = "ws://relay.example";

export interface Member {
  readonly name: string;
  readonly h: Harness;
  readonly core: Core;
  /** Signing key, hex. */
  readonly key: string;
  /** Events published since the last drain(). */
  readonly events: ClientEvent[];
}

/** Cores named `names`, each over a store of its own. */
export function members(...names: string[]): Member[] {
  return names.map((name) => {
    const h = harness();
    Object.defineProperty(h.ctx, "name", { value: name });
    const core = assemble(h.ctx, h.store.tables);
    // No relay: the wire below carries the outboxes.
    core.delivery.flush = async () => ({ unreachable: [], refused: [] });
    const events: ClientEvent[] = [];
    h.ctx.emitter.on("event", (e) => events.push(e));
    return { name, h, core, key: toHex(h.ctx.identity.publicIdentity.signingKey), events };
  });
}

/** Takes the events published so far. */
export const drain = (m: Member): ClientEvent[] => m.events.splice(0);

/**
 * Makes `a` and `b` contacts of each other (each naming the other by its name) with a real
 * session from the handshake: `a` invites, `b` accepts, `a` reads the Accept.
 */
export function befriend(a: Member, b: Member): void {
  const aInbox = MailboxKey.generate();
  const bInbox = MailboxKey.generate();
  const { code, pending } = createInvitation(a.h.ctx.identity, { relayUrl: RELAY, mailbox: aInbox.address });
  const inv = decodeInvitation(code);
  const accepted = acceptInvitation(b.h.ctx.identity, inv, {
    mailbox: bInbox.address,
    relayUrl: RELAY,
    plaintext: encodePayload(introPayload(b.name)),
    kemPublicKey: pending.kemPublicKey,
  });
  const book = new InvitationBook();
  book.add(pending);
  const opened = book.accept(a.h.ctx.identity, accepted.message);
  const record = (
    name: string,
    identity: Uint8Array,
    session: string,
    inbox: MailboxKey,
    to: MailboxKey,
  ): ContactRecord => ({
    name,
    nameSource: "user",
    identity: toHex(identity),
    session,
    verified: false,
    keyChanged: false,
    inbox: { relay: RELAY, key: toHex(inbox.serialize()) },
    outbox: { relay: RELAY, address: to.addressHex },
    createdAt: 1,
    lastActivity: 1,
    unread: 0,
    awaiting: [],
  });
  const bPublic = encodePublicIdentity(b.h.ctx.identity.publicIdentity);
  const aPublic = encodePublicIdentity(a.h.ctx.identity.publicIdentity);
  a.h.store.tx(() =>
    a.core.contacts.put(null, record(b.name, bPublic, toHex(opened.session.serialize()), aInbox, bInbox)),
  );
  b.h.store.tx(() =>
    b.core.contacts.put(null, record(a.name, aPublic, toHex(accepted.session.serialize()), bInbox, aInbox)),
  );
  a.core.mailboxes.invalidate();
  b.core.mailboxes.invalidate();
}

const conn = { ack: async () => {} } as unknown as RelayConnection;

/**
 * Carries every outbox entry of `from` (all cores when not given) to the core that owns its
 * mailbox, unless that one is `offline`, until nothing more moves; each carried entry counts as
 * stored (a group copy's message learns it). Receipts are sealed into outboxes first.
 */
export async function deliver(all: readonly Member[], offline: readonly Member[] = []): Promise<number> {
  let carried = 0;
  for (let round = 0; round < 20; round++) {
    let moved = 0;
    for (const m of all) {
      if (offline.includes(m)) continue;
      m.core.groupSend.release();
      m.core.receipts.seal((id, contact, wire) => m.core.outbox.enqueue(id, "receipt", contact.outbox, wire));
      for (const seq of m.core.outbox.seqs()) {
        const entry = m.core.outbox.get(seq)!;
        const to = all.find((o) => o.core.mailboxes.owner(entry.value.address, true));
        if (!to || offline.includes(to)) continue;
        to.core.inbox.onDeliver(conn, {
          type: "deliver",
          requestId: 0,
          address: fromHex(entry.value.address),
          messageId: fromHex(entry.value.clientMessageId),
          receivedAt: Date.now(),
          ciphertext: new Uint8Array(Buffer.from(entry.value.ciphertext, "base64")),
        });
        await to.core.inbox.processing;
        m.h.store.tx(() => {
          m.core.outbox.remove(seq);
          const g = entry.value.group;
          if (g && entry.value.messageSeq !== undefined) {
            const ev = m.core.groupSend.stored(g.conversation, entry.value.messageSeq, g.member);
            if (ev) m.core.publisher.emit(ev);
          }
        });
        moved++;
      }
    }
    carried += moved;
    if (moved === 0) return carried;
  }
  throw new Error("the wire did not settle in 20 rounds");
}

/** "Author: text" of the group messages among `events`. */
export const groupTexts = (events: readonly ClientEvent[]) =>
  events.flatMap((e) => (e.type === "message" && e.group !== undefined ? [`${e.contact}: ${e.text}`] : []));
