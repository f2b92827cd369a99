// How a failed deposit is classified and worded (core/deposits.ts), from the errors the relay
// connection and the pool really throw.
import { describe, expect, it } from "vitest";
import { backoffMs, depositOutcome, failureWords, unreachableReason } from "../../src/core/deposits.js";
import { ClientError } from "../../src/errors.js";
import { RelayRequestError, RelayUnreachableError } from "../../src/relay-connection.js";

describe("depositOutcome", () => {
  it("gives up a too-large envelope at once, naming the relay's limit when it is known", () => {
    const err = new RelayRequestError("TOO_LARGE", "too large");
    expect(depositOutcome(err, 4096)).toEqual({
      kind: "permanent",
      failure: { code: "too-large", detail: "4096" },
    });
    expect(depositOutcome(err, null)).toEqual({ kind: "permanent", failure: { code: "too-large" } });
  });

  it("shows a full mailbox and retries it; a missing mailbox or an unknown refusal lasts until the retention", () => {
    expect(depositOutcome(new RelayRequestError("QUOTA", "full"), 1)).toEqual({
      kind: "waiting",
      failure: { code: "mailbox-full" },
    });
    expect(depositOutcome(new RelayRequestError("UNKNOWN_MAILBOX", "gone"), 1)).toEqual({
      kind: "lasting",
      failure: { code: "mailbox-gone" },
    });
    expect(depositOutcome(new RelayRequestError("AUTH", "no"), 1)).toEqual({
      kind: "lasting",
      failure: { code: "refused", detail: "AUTH" },
    });
  });

  it("retries a relay's passing trouble without showing it", () => {
    for (const code of ["RATE_LIMITED", "INTERNAL", "SHUTTING_DOWN"] as const) {
      expect(depositOutcome(new RelayRequestError(code, "later"), 1)).toEqual({ kind: "transient" });
    }
  });

  it("leaves an unreachable relay to its link, with the reason in words", () => {
    const down = new RelayUnreachableError("connect ECONNREFUSED", { reason: "connection refused" });
    expect(depositOutcome(down, null)).toEqual({ kind: "unreachable", reason: "connection refused" });
    const wrapped = new ClientError("UNREACHABLE", "cannot reach", { cause: down });
    expect(depositOutcome(wrapped, null)).toEqual({ kind: "unreachable", reason: "connection refused" });
  });

  it("shows a relay this client refuses (its policy) and keeps the entry", () => {
    const refused = new ClientError("RELAY_REFUSED", "relay ws://x keeps undelivered messages for 90 days");
    expect(depositOutcome(refused, null)).toEqual({
      kind: "waiting",
      failure: { code: "relay-policy", detail: "relay ws://x keeps undelivered messages for 90 days" },
    });
  });

  it("rethrows anything that is not a relay's answer or a connection failure", () => {
    const bug = new TypeError("a bug");
    expect(() => depositOutcome(bug, null)).toThrow(bug);
    expect(() => depositOutcome(new ClientError("LOCKED", "busy"), null)).toThrow(/busy/);
  });
});

describe("unreachableReason", () => {
  it("says a timeout in words, and falls back to the message", () => {
    const timeout = Object.assign(new Error("The operation was aborted due to timeout"), {
      name: "TimeoutError",
    });
    expect(unreachableReason(new ClientError("UNREACHABLE", "cannot reach", { cause: timeout }))).toBe(
      "no answer in time",
    );
    expect(unreachableReason(new ClientError("UNREACHABLE", "cannot reach"))).toBe("cannot reach");
  });
});

describe("failureWords", () => {
  it("names the contact as it is called now", () => {
    expect(failureWords("Bob", { code: "too-large", detail: "4096" })).toBe(
      "too large for Bob's relay (it takes at most 4096 bytes)",
    );
    expect(failureWords("Bob", { code: "mailbox-gone" })).toBe("Bob's mailbox no longer exists");
    expect(failureWords("Bob", { code: "mailbox-full" })).toBe(
      "Bob's mailbox, or their relay, is full for now",
    );
    expect(failureWords("Bob", { code: "refused", detail: "AUTH" })).toBe("Bob's relay refused it (AUTH)");
    expect(failureWords("Bob", { code: "relay-policy" })).toBe("this client will not use Bob's relay");
    expect(failureWords("Bob", { code: "relay-policy", detail: "it keeps 90 days" })).toBe(
      "it keeps 90 days",
    );
  });
});

describe("backoffMs", () => {
  it("doubles from 1 s to 5 min, within a quarter either way", () => {
    for (const [attempts, base] of [
      [0, 1000],
      [1, 2000],
      [5, 32_000],
      [9, 300_000],
      [40, 300_000],
    ] as const) {
      for (let i = 0; i < 50; i++) {
        const ms = backoffMs(attempts);
        expect(ms).toBeGreaterThanOrEqual(base * 0.75);
        expect(ms).toBeLessThanOrEqual(base * 1.25);
      }
    }
  });
});
