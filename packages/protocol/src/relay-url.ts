// The relay URL check, on its own: it needs no cryptography, so a client can validate settings
// (and paint its first screen) without loading the rest of the protocol. Also exported as
// `@parley/protocol/relay-url`.
import { utf8 } from "./_bytes.js";

/** The longest relay URL an invitation can carry (PROTOCOL.md §4.1). */
export const MAX_RELAY_URL_LENGTH = 255;

/**
 * Checks a relay URL (PROTOCOL.md §4.3): at most 255 bytes of printable ASCII, `ws://` or `wss://`
 * then a host, no credentials, no fragment. Returns a reason, or null when it is acceptable.
 */
export function relayUrlProblem(url: string): string | null {
  if (utf8.encode(url).length > MAX_RELAY_URL_LENGTH) return `longer than ${MAX_RELAY_URL_LENGTH} bytes`;
  // Printable ASCII only: no spaces, control characters, escape sequences or bidi overrides can
  // reach a terminal through a signed URL. International host names travel as punycode.
  if (!/^[\x21-\x7e]+$/.test(url))
    return "only printable ASCII characters are allowed (no spaces or control characters)";
  if (!/^wss?:\/\/[^/]/i.test(url)) return "must start with ws:// or wss:// followed by a host";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "not a URL";
  }
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:")
    return `scheme must be ws: or wss:, not ${parsed.protocol}`;
  if (!parsed.hostname) return "no host";
  if (parsed.username || parsed.password) return "credentials are not allowed in a relay URL";
  if (parsed.hash || url.includes("#")) return "a fragment is not allowed in a relay URL";
  return null;
}
