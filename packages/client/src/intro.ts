// Client control texts. A text payload whose text starts with NUL is for the client, never shown:
// `NUL "parley:intro:" JSON`, where JSON is {"v":1,"name":"..."} or {"v":1,"name":"...","inbox":"<hex>"},
// announces the sender's display name and, with `inbox`, the mailbox address (on the same relay)
// where the receiver is to deposit from then on. An accepter sends one inside its Accept; the
// inviter answers with its own once the session is open, naming a fresh inbox so that the
// invitation's mailbox, whose address anyone who saw the code can derive, can be deleted.
// Users cannot send texts starting with NUL (the client refuses them). PROTOCOL.md §7.4.

import { fromHex, toHex } from "@parley/protocol";

const PREFIX = "\u0000parley:intro:";
const ADDRESS_HEX = /^[0-9a-f]{64}$/;

export interface Intro {
  readonly name: string;
  /** 32-byte mailbox address: where the receiver deposits from now on (same relay). */
  readonly inbox?: Uint8Array;
}

export const isControlText = (text: string): boolean => text.startsWith("\u0000");

export function encodeIntro(intro: Intro): string {
  if (intro.inbox && intro.inbox.length !== 32) throw new RangeError("an intro's inbox is a 32-byte address");
  const body = intro.inbox
    ? { v: 1, name: intro.name, inbox: toHex(intro.inbox) }
    : { v: 1, name: intro.name };
  return PREFIX + JSON.stringify(body);
}

/** The announced name (and inbox), or null for any other or malformed control text. */
export function decodeIntro(text: string): Intro | null {
  if (!text.startsWith(PREFIX)) return null;
  let v: { v?: unknown; name?: unknown; inbox?: unknown };
  try {
    v = JSON.parse(text.slice(PREFIX.length)) as typeof v;
  } catch {
    return null;
  }
  if (v === null || typeof v !== "object" || v.v !== 1 || typeof v.name !== "string") return null;
  if (v.inbox === undefined) return { name: v.name };
  if (typeof v.inbox !== "string" || !ADDRESS_HEX.test(v.inbox)) return null;
  return { name: v.name, inbox: fromHex(v.inbox) };
}
