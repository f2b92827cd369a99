// Where a connection comes from, for per-source limits: the peer's IP address, or, from a proxy the
// operator trusts (`--trust-proxy`), the address its `X-Forwarded-For` names. An IPv6 source is its
// /64, the block one subscriber usually holds. Sources are held in memory only while in use, and
// never logged (the transparency statement says so).
import { BlockList, isIPv4, isIPv6 } from "node:net";

/** The networks of `--trust-proxy` (`address/prefix` strings), as a matcher. */
export function trustList(networks: readonly string[]): BlockList {
  const list = new BlockList();
  for (const n of networks) {
    const [address, prefix] = n.split("/") as [string, string];
    list.addSubnet(address, Number(prefix), isIPv4(address) ? "ipv4" : "ipv6");
  }
  return list;
}

/** `::ffff:1.2.3.4` is 1.2.3.4; anything else unchanged. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/** Is `address` (a peer's) one of the trusted proxies? */
export function trusted(list: BlockList, address: string): boolean {
  address = unmapped(address);
  if (isIPv4(address)) return list.check(address, "ipv4");
  return isIPv6(address) && list.check(address, "ipv6");
}

/** The eight 16-bit groups of an IPv6 address (an embedded IPv4 tail included). */
function groups(address: string): number[] {
  let text = address.toLowerCase().replace(/%.*$/, "");
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const part = (s: string | undefined) => (s ? s.split(":").map((g) => Number.parseInt(g, 16)) : []);
  const h = part(head);
  const t = part(tail);
  return tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/** The source an address counts as: an IPv4 address itself; an IPv6 address's /64. */
export function sourceKey(address: string): string {
  const a = unmapped(address);
  if (!isIPv6(a)) return a;
  return `${groups(a)
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(":")}::/64`;
}

/**
 * The source of a request from `peer`: the peer itself, unless it is a trusted proxy; then the
 * right-most `X-Forwarded-For` address that is not itself a trusted proxy (each proxy appends the
 * address it saw, so the ones to its left may be forged). Null when a trusted proxy names no
 * usable address (it forwards for clients it does not name, and limits them itself).
 */
export function sourceOf(
  peer: string,
  forwardedFor: string | string[] | undefined,
  trust: BlockList,
): string | null {
  const address = unmapped(peer);
  if (!trusted(trust, address)) return sourceKey(address);
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(",") : (forwardedFor ?? "");
  const hops = header
    .split(",")
    .map((h) => unmapped(h.trim()))
    .filter((h) => h !== "");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (!isIPv4(hop) && !isIPv6(hop)) return null;
    if (!trusted(trust, hop)) return sourceKey(hop);
  }
  return null;
}

/**
 * A pace of `rate` uses per second with bursts of `burst` (the generic cell rate algorithm): it
 * says how long a use must wait, and books it.
 */
export class Pace {
  /** When the bucket would be empty again, in ms (the theoretical arrival time). */
  private tat = 0;
  private readonly interval: number;
  private readonly tolerance: number;

  constructor(rate: number, burst: number) {
    this.interval = 1000 / rate;
    this.tolerance = this.interval * (burst - 1);
  }

  /** Milliseconds a use at `now` must wait. */
  wait(now: number): number {
    return Math.max(0, this.tat - this.tolerance - now);
  }

  /** Books a use that happens at `at` (now, or after its wait). */
  book(at: number): void {
    this.tat = Math.max(this.tat, at) + this.interval;
  }

  /** Nothing booked is still pending at `now`: the pace can be forgotten. */
  idle(now: number): boolean {
    return this.tat <= now;
  }

  /** When it will be idle. */
  get idleAt(): number {
    return this.tat;
  }
}
