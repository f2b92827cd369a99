// What a failed deposit means, as pure functions: how the outbox treats it (retry, show, give
// up), how long it waits before the next attempt, and the words the user is shown for it.
import { ClientError } from "../errors.js";
import { networkProblem, RelayRequestError, RelayUnreachableError } from "../relay-connection.js";
import type { DeliveryFailure, OutboxRecord } from "../store/records.js";

/** Retry delays of the outbox in a long-running process: 1 s doubling to 5 min, with jitter. */
export function backoffMs(attempts: number): number {
  const base = Math.min(300_000, 1000 * 2 ** Math.min(attempts, 9));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/** How a failed deposit is handled. */
export type DepositOutcome =
  /** The relay could not be reached: its link retries; nothing is recorded on the message. */
  | { kind: "unreachable"; reason: string }
  /** Refused for now (rate limit, busy, storage trouble, shutting down): retried, not shown. */
  | { kind: "transient" }
  /** Refused for as long as the relay says so (a full mailbox, its policy): retried, shown. */
  | { kind: "waiting"; failure: DeliveryFailure }
  /** Refused in a way that may be final (no such mailbox, unexpected): given up after the retention. */
  | { kind: "lasting"; failure: DeliveryFailure }
  /** It will never be taken (too large): given up now. */
  | { kind: "permanent"; failure: DeliveryFailure };

/**
 * Classifies what a deposit threw; `limit` is the relay's ciphertext limit when it was known.
 * Anything that is neither a relay's answer nor a connection's failure is rethrown.
 */
export function depositOutcome(err: unknown, limit: number | null): DepositOutcome {
  if (err instanceof RelayUnreachableError) return { kind: "unreachable", reason: err.reason };
  if (err instanceof ClientError && err.code === "UNREACHABLE") {
    return { kind: "unreachable", reason: unreachableReason(err) };
  }
  if (err instanceof ClientError && err.code === "RELAY_REFUSED") {
    return { kind: "waiting", failure: { code: "relay-policy", detail: err.message } };
  }
  if (!(err instanceof RelayRequestError)) throw err;
  switch (err.code) {
    case "TOO_LARGE":
      return {
        kind: "permanent",
        failure: { code: "too-large", ...(limit ? { detail: String(limit) } : {}) },
      };
    case "UNKNOWN_MAILBOX":
      return { kind: "lasting", failure: { code: "mailbox-gone" } };
    case "QUOTA":
      return { kind: "waiting", failure: { code: "mailbox-full" } };
    case "RATE_LIMITED":
    case "INTERNAL":
    case "SHUTTING_DOWN":
      return { kind: "transient" };
    default:
      return { kind: "lasting", failure: { code: "refused", detail: err.code } };
  }
}

/** Why a connection could not be made, in words, from what connect() threw. */
export function unreachableReason(e: unknown): string {
  if (e instanceof RelayUnreachableError) return e.reason;
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof RelayUnreachableError) return cause.reason;
  // fetch() (the transparency statement) wraps the socket's error in its own cause.
  const inner = (cause as { cause?: unknown } | undefined)?.cause;
  if (inner) return networkProblem(inner);
  if ((cause as Error | undefined)?.name === "TimeoutError") return "no answer in time";
  return cause ? networkProblem(cause) : (e as Error).message;
}

export const KIND_WORDS: Record<OutboxRecord["kind"], string> = {
  message: "a message",
  receipt: "a receipt",
  accept: "your acceptance of their invitation",
  intro: "your introduction",
  group: "group traffic",
};

export const sameFailure = (a: DeliveryFailure | undefined, b: DeliveryFailure) =>
  a !== undefined && a.code === b.code && a.detail === b.detail;

/** A delivery failure in words, with the contact's name as it is now. */
export function failureWords(name: string, f: DeliveryFailure): string {
  switch (f.code) {
    case "too-large":
      return `too large for ${name}'s relay${f.detail ? ` (it takes at most ${f.detail} bytes)` : ""}`;
    case "mailbox-gone":
      return `${name}'s mailbox no longer exists`;
    case "mailbox-full":
      // QUOTA is either: that mailbox's quota, or the relay's storage cap (PROTOCOL.md §8.4).
      return `${name}'s mailbox, or their relay, is full for now`;
    case "refused":
      return `${name}'s relay refused it${f.detail ? ` (${f.detail})` : ""}`;
    case "relay-policy":
      return f.detail ?? `this client will not use ${name}'s relay`;
  }
}
