// Client control texts. A text payload whose text starts with NUL is for the client, never shown:
// `NUL "parley:intro:" JSON`, where JSON is {"v":1,"name":"..."}, optionally with "inbox":"<hex>"
// and "token":"<hex>", announces the sender's display name; with `inbox`, the mailbox address (on
// the same relay) where the receiver is to deposit from then on; with `token`, the deposit token
// that mailbox takes deposits with. An accepter sends one inside its Accept; the
// inviter answers with its own once the session is open, naming a fresh inbox so that the
// invitation's mailbox, whose address anyone who saw the code can derive, can be deleted.
// Users cannot send texts starting with NUL (the client refuses them). PROTOCOL.md §7.4.

import { fromHex, toHex } from "@parley/protocol";

const PREFIX = "\u0000parley:intro:";
/** 32 bytes in lower-case hex: an inbox address or a deposit token. */
const HEX32 = /^[0-9a-f]{64}$/;

export interface Intro {
  readonly name: string;
  /** 32-byte mailbox address: where the receiver deposits from now on (same relay). */
  readonly inbox?: Uint8Array;
  /** 32-byte deposit token of the mailbox the receiver deposits to (`inbox` if given). */
  readonly token?: Uint8Array;
}

export const isControlText = (text: string): boolean => text.startsWith("\u0000");

export function encodeIntro(intro: Intro): string {
  if (intro.inbox && intro.inbox.length !== 32) throw new RangeError("an intro's inbox is a 32-byte address");
  if (intro.token && intro.token.length !== 32) throw new RangeError("an intro's token is 32 bytes");
  const body = {
    v: 1,
    name: intro.name,
    ...(intro.inbox ? { inbox: toHex(intro.inbox) } : {}),
    ...(intro.token ? { token: toHex(intro.token) } : {}),
  };
  return PREFIX + JSON.stringify(body);
}

/** The announced name (inbox, token), or null for any other or malformed control text. */
export function decodeIntro(text: string): Intro | null {
  if (!text.startsWith(PREFIX)) return null;
  let v: { v?: unknown; name?: unknown; inbox?: unknown; token?: unknown };
  try {
    v = JSON.parse(text.slice(PREFIX.length)) as typeof v;
  } catch {
    return null;
  }
  if (v === null || typeof v !== "object" || v.v !== 1 || typeof v.name !== "string") return null;
  const hex = (x: unknown) => x === undefined || (typeof x === "string" && HEX32.test(x));
  if (!hex(v.inbox) || !hex(v.token)) return null;
  return {
    name: v.name,
    ...(typeof v.inbox === "string" ? { inbox: fromHex(v.inbox) } : {}),
    ...(typeof v.token === "string" ? { token: fromHex(v.token) } : {}),
  };
}
