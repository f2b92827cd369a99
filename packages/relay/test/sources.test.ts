// Where a connection comes from (src/sources.ts): the key per-source limits count by, and which
// X-Forwarded-For address is believed.
import { describe, expect, it } from "vitest";
import { Pace, sourceKey, sourceOf, trusted, trustList } from "../src/sources.js";

describe("connection sources", () => {
  it("an IPv4 address is its own source; an IPv6 address counts as its /64, however it is written", () => {
    expect(sourceKey("203.0.113.7")).toBe("203.0.113.7");
    expect(sourceKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
    const forms = [
      "2001:db8:0:1::1",
      "2001:0db8:0000:0001:0000:0000:0000:0001",
      "2001:db8:0:1:ffff:1:2:3",
      "2001:DB8:0:1::",
    ];
    expect(new Set(forms.map(sourceKey))).toEqual(new Set(["2001:db8:0:1::/64"]));
    expect(sourceKey("2001:db8:0:2::1")).toBe("2001:db8:0:2::/64");
    expect(sourceKey("::1")).toBe("0:0:0:0::/64");
    expect(sourceKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(sourceKey("64:ff9b::192.0.2.33")).toBe("64:ff9b:0:0::/64");
  });

  it("believes X-Forwarded-For only from a trusted proxy, and then its right-most untrusted address", () => {
    const trust = trustList(["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]);
    expect(trusted(trust, "::ffff:127.0.0.1")).toBe(true);
    expect(trusted(trust, "127.0.0.2")).toBe(false);
    // Not a proxy: the peer, whatever it claims.
    expect(sourceOf("198.51.100.1", "203.0.113.9", trust)).toBe("198.51.100.1");
    // A proxy: the address it appended; addresses further left may be forged by the client.
    expect(sourceOf("127.0.0.1", "203.0.113.9", trust)).toBe("203.0.113.9");
    expect(sourceOf("127.0.0.1", "192.0.2.66, 203.0.113.9", trust)).toBe("203.0.113.9");
    // A chain of trusted proxies is skipped, right to left.
    expect(sourceOf("127.0.0.1", "203.0.113.9, 10.1.2.3", trust)).toBe("203.0.113.9");
    expect(sourceOf("fd00::5", ["192.0.2.66", "2001:db8::7"], trust)).toBe("2001:db8:0:0::/64");
    // A proxy that names no one, or something that is not an address: not limited per source.
    expect(sourceOf("127.0.0.1", undefined, trust)).toBeNull();
    expect(sourceOf("127.0.0.1", "", trust)).toBeNull();
    expect(sourceOf("127.0.0.1", "10.0.0.1", trust)).toBeNull();
    expect(sourceOf("127.0.0.1", "unknown", trust)).toBeNull();
    expect(sourceOf("127.0.0.1", "192.0.2.1:4711", trust)).toBeNull();
  });

  it("paces uses: a burst, then the rate, and forgets nothing before it is due", () => {
    const pace = new Pace(10, 20); // 10 a second, bursts of 20
    for (let i = 0; i < 20; i++) {
      expect(pace.wait(1000)).toBe(0);
      pace.book(1000);
    }
    expect(pace.wait(1000)).toBe(100);
    expect(pace.idle(1000)).toBe(false);
    pace.book(1100);
    expect(pace.wait(1100)).toBe(100);
    expect(pace.idle(1000 + 2100)).toBe(true);
    expect(pace.wait(1000 + 2100)).toBe(0);
  });
});
