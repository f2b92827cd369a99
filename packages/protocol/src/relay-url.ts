// The relay URL check, on its own: it needs no cryptography, so a client can validate settings
// (and paint its first screen) without loading the rest of the protocol. Also exported as
// `@parley/protocol/relay-url`.
import { utf8 } from "./_bytes.js";

/** The longest relay URL an invitation can carry (PROTOCOL.md §4.1). */
export const MAX_RELAY_URL_LENGTH = 255;

/** The first rule of PROTOCOL.md §4.3 (numbered 1 … 8 there) that a relay URL breaks, and why. */
export interface RelayUrlFault {
  readonly rule: 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;
  readonly problem: string;
}

/**
 * Checks a relay URL against the rules of PROTOCOL.md §4.3, in their order, and returns the first
 * one it breaks, or null when it is acceptable.
 *
 * @example
 * ```ts
 * relayUrlFault("wss://user@relay.example"); // { rule: 7, problem: "credentials are not allowed …" }
 * ```
 */
export function relayUrlFault(url: string): RelayUrlFault | null {
  // 1: the length an invitation's u8 can carry, in UTF-8 bytes (checked before rule 2).
  if (utf8.encode(url).length > MAX_RELAY_URL_LENGTH)
    return { rule: 1, problem: `longer than ${MAX_RELAY_URL_LENGTH} bytes` };
  // 2: printable ASCII only: no spaces, control characters, escape sequences or bidi overrides can
  // reach a terminal through a signed URL. International host names travel as punycode.
  if (!/^[\x21-\x7e]+$/.test(url))
    return {
      rule: 2,
      problem: "only printable ASCII characters are allowed (no spaces or control characters)",
    };
  // 3: refuses `ws:host`, `wss:/host`, `wss:///host`, which the WHATWG parser would repair.
  if (!/^wss?:\/\/[^/]/i.test(url))
    return { rule: 3, problem: "must start with ws:// or wss:// followed by a host" };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { rule: 4, problem: "not a URL" };
  }
  // 5 and 6 cannot fail after 3 and 4 (a WHATWG URL with a special scheme always has a host);
  // they are kept as a guard, and numbered as in the spec.
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:")
    return { rule: 5, problem: `scheme must be ws: or wss:, not ${parsed.protocol}` };
  if (!parsed.hostname) return { rule: 6, problem: "no host" };
  if (parsed.username || parsed.password)
    return { rule: 7, problem: "credentials are not allowed in a relay URL" };
  if (parsed.hash || url.includes("#"))
    return { rule: 8, problem: "a fragment is not allowed in a relay URL" };
  return null;
}

/**
 * Checks a relay URL (PROTOCOL.md §4.3): at most 255 bytes of printable ASCII, `ws://` or `wss://`
 * then a host, no credentials, no fragment. Returns a reason, or null when it is acceptable.
 */
export function relayUrlProblem(url: string): string | null {
  return relayUrlFault(url)?.problem ?? null;
}
