// Delivery when the storage fails, or fails to say that it succeeded: a relay in this process, around
// a memory storage the test makes fail (or lose a reply) at the moment it chooses.
import { MailboxKey } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStorage } from "../src/storage/memory.js";
import {
  type DepositRequest,
  type DepositResult,
  type MailboxLimits,
  StorageUnavailableError,
  type StoredMessage,
} from "../src/storage/types.js";
import { type InProcessRelay, metrics, startInProcessRelay, TestClient, until } from "./helpers.js";

const NO_TIMERS = ["--sweep-interval", "1h", "--heartbeat", "1h"];
const relays: InProcessRelay[] = [];
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(relays.splice(0).map((r) => r.stop()));
});

async function relay(storage: MemoryStorage): Promise<InProcessRelay> {
  const r = await startInProcessRelay(storage, NO_TIMERS);
  relays.push(r);
  return r;
}
async function connect(port: number): Promise<TestClient> {
  const c = await TestClient.connect(port);
  clients.push(c);
  return c;
}
const text = (s: string) => new TextEncoder().encode(s);

/** A memory storage whose next deposits fail in the way the test asks. */
class FailingStorage extends MemoryStorage {
  /** The next delivery rounds' reads of a mailbox fail (the storage is unavailable). */
  failPending = 0;
  /** The next deposit is stored, but its caller hears that the storage is unavailable. */
  loseNextReply = false;
  /** The next deposit fails now and is stored later, when the test calls `commitHeld()`. */
  holdNext = false;
  private held: (() => Promise<DepositResult>) | undefined;

  override async pending(
    address: Uint8Array,
    now: number,
    limit: number,
    afterSeq?: number,
  ): Promise<StoredMessage[]> {
    if (this.failPending > 0) {
      this.failPending--;
      throw new StorageUnavailableError("unavailable for the test");
    }
    return super.pending(address, now, limit, afterSeq);
  }

  override async deposit(r: DepositRequest, limits: MailboxLimits): Promise<DepositResult> {
    if (this.holdNext) {
      this.holdNext = false;
      this.held = () => super.deposit(r, limits);
      throw new StorageUnavailableError("timed out for the test");
    }
    const result = await super.deposit(r, limits);
    if (this.loseNextReply) {
      this.loseNextReply = false;
      throw new StorageUnavailableError("reply lost for the test");
    }
    return result;
  }

  commitHeld(): Promise<DepositResult> {
    const commit = this.held;
    this.held = undefined;
    if (!commit) throw new Error("no deposit held");
    return commit();
  }
}

/** A relay on a FailingStorage, a mailbox with its owner subscribed, and another connection to deposit. */
async function subscribedMailbox() {
  const storage = new FailingStorage();
  const r = await relay(storage);
  const owner = MailboxKey.generate();
  const subscriber = await connect(r.port);
  const sender = await connect(r.port);
  expect(await subscriber.createMailbox(owner)).toMatchObject({ type: "ok" });
  expect(await subscriber.subscribe(owner)).toMatchObject({ type: "ok" });
  return { storage, port: r.port, owner, subscriber, sender };
}

describe("delivery when the storage fails", () => {
  it("answers a subscribe once, even when its first delivery round fails", async () => {
    const storage = new FailingStorage();
    const r = await relay(storage);
    const owner = MailboxKey.generate();
    const c = await connect(r.port);
    expect(await c.createMailbox(owner)).toMatchObject({ type: "ok" });
    storage.failPending = 1;
    expect(await c.subscribe(owner)).toMatchObject({ type: "ok" });
    await until("the failed round is logged", () => r.logs().includes("storage unavailable: requests fail"));
    // The next frame answers the next request: no error followed the subscribe's ok.
    const unsubscribed = await c.request({ type: "unsubscribe", requestId: 0, address: owner.address });
    expect(unsubscribed).toMatchObject({ type: "ok" });
    expect(c.queued).toBe(0);
    expect((await metrics(r.port)).get("parley_relay_errors_total") ?? 0).toBe(0);
  });

  it("pushes a deposit to the subscribers here when it was stored but the relay heard a failure", async () => {
    const { storage, owner, subscriber, sender } = await subscribedMailbox();
    storage.loseNextReply = true;
    expect(
      await sender.deposit(owner.address, text("stored anyway"), text("client-id-000001")),
    ).toMatchObject({
      type: "error",
      code: "INTERNAL",
    });
    const d = await subscriber.next();
    expect(d).toMatchObject({ type: "deliver" });
    expect(d.type === "deliver" && new TextDecoder().decode(d.ciphertext)).toBe("stored anyway");
  });

  it("pushes a deposit stored after its attempt failed once the sender's retry finds it (duplicate)", async () => {
    const { storage, port, owner, subscriber, sender } = await subscribedMailbox();
    const id = text("client-id-000002");
    storage.holdNext = true;
    expect(await sender.deposit(owner.address, text("late"), id)).toMatchObject({
      type: "error",
      code: "INTERNAL",
    });
    // The attempt commits after the relay gave up on it, as a Redis command that timed out may.
    expect((await storage.commitHeld()).status).toBe("stored");
    expect(subscriber.queued).toBe(0);
    // The sender retries with the same client id: stored once, and now pushed.
    expect(await sender.deposit(owner.address, text("late"), id)).toMatchObject({ type: "ok" });
    const d = await subscriber.next();
    expect(d.type === "deliver" && new TextDecoder().decode(d.ciphertext)).toBe("late");
    expect((await metrics(port)).get("parley_relay_duplicate_deposits_total")).toBe(1);
    expect(await storage.stats()).toMatchObject({ messages: 1 });
  });
});
