// Deposit tokens of my mailboxes (PROTOCOL.md §7.4 item 5): each mailbox I make for one contact
// has a token, which my intro gives the contact; the relay gets it only once the contact's own intro
// showed it deposits with tokens, so that a contact on an older client is never locked out.
import { fromHex, MailboxKey } from "@parley/protocol";
import { RelayRequestError } from "../relay-connection.js";
import type { Contacts } from "./contacts.js";
import { type Context, warn } from "./context.js";
import type { RelayPool } from "./relays.js";

export class DepositTokens {
  /** A contact's intro made a token due while receiving: lockDue() runs after the slice. */
  due = false;

  constructor(
    private readonly ctx: Context,
    private readonly contacts: Pick<Contacts, "all" | "get" | "put">,
    private readonly pool: Pick<RelayPool, "connect">,
  ) {}

  /**
   * Gives the relay the tokens that are due: from then on it refuses deposits there without the
   * token. A relay that does not know the frame (BAD_FRAME) leaves the mailbox open, and the user
   * is told; one that cannot be reached is asked again at the next prune.
   */
  async lockDue(): Promise<void> {
    this.due = false;
    const due = this.contacts.all().filter((r) => r.value.inbox.lock === "due" && r.value.inbox.token);
    for (const { key: id, value } of due) {
      const { relay, key, token } = value.inbox;
      let outcome: "set" | "refused";
      try {
        const conn = await this.pool.connect(relay);
        await conn.setDepositToken(MailboxKey.deserialize(fromHex(key)), fromHex(token!));
        outcome = "set";
      } catch (e) {
        if (!(e instanceof RelayRequestError && e.code === "BAD_FRAME")) continue;
        outcome = "refused";
        warn(
          this.ctx,
          `relay ${relay} does not take deposit tokens: anyone who learns the address of your mailbox for ${value.name} can fill it`,
        );
      }
      this.ctx.tx(() => {
        const contact = this.contacts.get(id);
        if (contact?.inbox.key !== key || contact.inbox.lock !== "due") return;
        contact.inbox = { ...contact.inbox, lock: outcome };
        this.contacts.put(id, contact);
      });
    }
  }

  /** The token the relay holds for my mailbox `key` (hex of its serialization), if any. */
  lockedToken(key: string): string | undefined {
    const r = this.contacts.all().find((c) => c.value.inbox.key === key && c.value.inbox.lock === "set");
    return r?.value.inbox.token;
  }
}
