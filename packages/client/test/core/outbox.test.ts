// The outbox queue (core/outbox.ts) over a real store: an intro that names a new inbox or a
// deposit token moves what waits for the old address, and only that.
import { afterEach, describe, expect, it } from "vitest";
import { Outbox, outboxEntry } from "../../src/core/outbox.js";
import { cleanupStores, harness } from "./helpers.js";

afterEach(cleanupStores);

const OLD = "11".repeat(32);
const NEW = "22".repeat(32);

describe("outboxEntry", () => {
  it("is due at once, with a fresh client message id and the destination's token", () => {
    const a = outboxEntry(
      "message",
      { relay: "ws://r", address: OLD, token: "ab" },
      new Uint8Array([1, 2]),
      7,
    );
    const b = outboxEntry("receipt", { relay: "ws://r", address: OLD }, new Uint8Array([1, 2]));
    expect(a).toMatchObject({ kind: "message", relay: "ws://r", address: OLD, token: "ab", messageSeq: 7 });
    expect(a.ciphertext).toBe(Buffer.from([1, 2]).toString("base64"));
    expect(a.attempts).toBe(0);
    expect(a.nextAttemptAt).toBe(a.createdAt);
    expect(a.clientMessageId).toMatch(/^[0-9a-f]{32}$/);
    expect(b.clientMessageId).not.toBe(a.clientMessageId);
    expect("token" in b || "messageSeq" in b).toBe(false);
  });
});

describe("Outbox.retarget", () => {
  it("moves a contact's entries for the old address to the new one with its token, and nothing else", () => {
    const { store } = harness();
    const outbox = new Outbox(store.tables.outbox);
    const wire = new Uint8Array([9]);
    const [mine, otherAddress, otherContact] = store.tx(() => [
      outbox.enqueue("c1", "message", { relay: "ws://r", address: OLD, token: "01" }, wire),
      outbox.enqueue("c1", "message", { relay: "ws://r", address: "33".repeat(32) }, wire),
      outbox.enqueue("c2", "message", { relay: "ws://r", address: OLD }, wire),
    ]);
    store.tx(() => outbox.retarget("c1", OLD, { address: NEW, token: "02" }));
    expect(outbox.get(mine!)?.value).toMatchObject({ address: NEW, token: "02" });
    expect(outbox.get(otherAddress!)?.value.address).toBe("33".repeat(32));
    expect(outbox.get(otherContact!)?.value.address).toBe(OLD);
    // A move without a token drops the old one.
    store.tx(() => outbox.retarget("c1", NEW, { address: OLD }));
    const moved = outbox.get(mine!)!.value;
    expect(moved.address).toBe(OLD);
    expect("token" in moved).toBe(false);
    expect(outbox.size("c1")).toBe(2);
    expect(outbox.size()).toBe(3);
  });
});
