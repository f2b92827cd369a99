// An honest user, for the attack tests: one mailbox, a sender that deposits into it one message
// after another (retrying a refused one, with the same client message id and ciphertext, as the
// real client's outbox does), and a subscriber that acks every delivery. It counts what it sent,
// what was acknowledged, what was refused and what arrived, and survives relay restarts
// (`pause()`, then `start()` on the new port).
import { randomBytes } from "node:crypto";
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  MailboxAction,
  MailboxKey,
  type RelayErrorName,
  toHex,
} from "@parley/protocol";
import WebSocket from "ws";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One WebSocket, requests matched to replies by request id; deliveries go to `onDeliver`. */
class Wire {
  private nextId = 1;
  private readonly waiting = new Map<number, (f: Frame) => void>();
  challenge: Uint8Array = new Uint8Array(32);
  onDeliver: (f: Extract<Frame, { type: "deliver" }>) => void = () => {};

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => {
      const f = decodeFrame(new Uint8Array(data), { maxCiphertext: 16 * 1024 * 1024 });
      if (f.type === "deliver") return this.onDeliver(f);
      this.waiting.get(f.requestId)?.(f);
      this.waiting.delete(f.requestId);
    });
    ws.on("error", () => {});
    ws.on("close", () => {
      for (const w of this.waiting.values())
        w({ type: "error", requestId: 0, code: "INTERNAL", message: "closed" });
      this.waiting.clear();
    });
  }

  static async connect(port: number): Promise<Wire> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const w = new Wire(ws);
    const welcome = await w.request({ type: "hello", requestId: 0, maxVersion: 1 });
    if (welcome.type !== "welcome") throw new Error(`expected welcome, got ${welcome.type}`);
    w.challenge = welcome.challenge;
    return w;
  }

  request(frame: Frame): Promise<Frame> {
    if (this.ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve({ type: "error", requestId: 0, code: "INTERNAL", message: "closed" });
    }
    const requestId = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(requestId, resolve);
      this.ws.send(encodeFrame({ ...frame, requestId } as Frame));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

export class HonestUser {
  readonly owner = MailboxKey.generate();
  /** Ciphertexts (hex) the relay answered `ok` for. */
  readonly acknowledged = new Set<string>();
  /** Ciphertexts (hex) delivered to the subscriber. */
  readonly received = new Set<string>();
  /** Deposits answered with an error, by code (each retried). */
  readonly refused = new Map<RelayErrorName, number>();
  private sender: Wire | undefined;
  private subscriber: Wire | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  /** The message being sent (kept across a pause: retried with the same id). */
  private current: { id: Uint8Array; ciphertext: Uint8Array } | undefined;
  private created = false;

  constructor(private readonly size = 1000) {}

  /** Connects to a relay, creates the mailbox the first time, subscribes, and starts sending. */
  async start(port: number): Promise<void> {
    this.stopping = false;
    this.sender = await Wire.connect(port);
    this.subscriber = await Wire.connect(port);
    const sub = this.subscriber;
    if (!this.created) {
      const created = await sub.request({
        type: "createMailbox",
        requestId: 0,
        ownerKey: this.owner.publicKey,
        signature: this.owner.prove(MailboxAction.create, sub.challenge),
      });
      if (created.type !== "ok") throw new Error(`honest createMailbox: ${JSON.stringify(created)}`);
      this.created = true;
    }
    sub.onDeliver = (d) => {
      this.received.add(toHex(d.ciphertext));
      void sub.request({ type: "ack", requestId: 0, address: d.address, messageId: d.messageId });
    };
    const subscribed = await sub.request({
      type: "subscribe",
      requestId: 0,
      address: this.owner.address,
      signature: this.owner.prove(MailboxAction.subscribe, sub.challenge),
    });
    if (subscribed.type !== "ok") throw new Error(`honest subscribe: ${JSON.stringify(subscribed)}`);
    this.running = this.send();
  }

  private async send(): Promise<void> {
    while (!this.stopping) {
      this.current ??= { id: randomBytes(16), ciphertext: randomBytes(this.size) };
      const { id, ciphertext } = this.current;
      const reply = await this.sender!.request({
        type: "deposit",
        requestId: 0,
        address: this.owner.address,
        clientMessageId: id,
        ciphertext,
      });
      if (reply.type === "ok") {
        this.acknowledged.add(toHex(ciphertext));
        this.current = undefined;
        await sleep(10);
        continue;
      }
      if (reply.type !== "error") throw new Error(`honest deposit: unexpected ${reply.type}`);
      if (!["QUOTA", "INTERNAL", "RATE_LIMITED", "SHUTTING_DOWN"].includes(reply.code)) {
        throw new Error(`honest deposit refused for good: ${reply.code} ${reply.message}`);
      }
      this.refused.set(reply.code, (this.refused.get(reply.code) ?? 0) + 1);
      await sleep(100);
    }
  }

  /** Refusals so far with this code. */
  refusals(code: RelayErrorName): number {
    return this.refused.get(code) ?? 0;
  }

  /** Every acknowledged message has arrived. */
  get allArrived(): boolean {
    return [...this.acknowledged].every((c) => this.received.has(c));
  }

  /** Stops sending (the message in hand is kept for the next start) and closes both connections. */
  async pause(): Promise<void> {
    this.stopping = true;
    await this.running;
    this.sender?.close();
    this.subscriber?.close();
  }
}
