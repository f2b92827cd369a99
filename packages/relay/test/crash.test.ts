// Crash safety with the real process and the real SQLite file: deposits pour in from several
// pipelining connections while the owner drains and acks, and the relay is killed with SIGKILL at a
// different moment in each round. After a restart on the same data directory:
// - every deposit whose OK arrived is delivered (no loss);
// - nothing unknown is delivered, and nothing is delivered again once its ack was confirmed, nor twice
//   by one relay process (a message whose ack was in flight at the kill may come once more: that is
//   at-least-once delivery, not a duplicate);
// - a deposit in flight at the kill (no OK) may or may not be there; retried with the same client
//   message id, as a client would, it ends up stored exactly once, and so does a retry of a deposit
//   that was acknowledged (the relay counts each of those as a duplicate).
//
// startRelay runs the relay as the spawned process itself, so SIGKILL reaches it; `crash()` still
// checks that the killed relay's port refuses connections, so the test cannot pass without a crash.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type DeliverFrame,
  decodeFrame,
  encodeFrame,
  type Frame,
  MailboxAction,
  MailboxKey,
  toHex,
} from "@parley/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { metric, type RelayProcess, sleep, startRelay, until } from "./helpers.js";

/** Milliseconds of load before the kill, one round each. */
const KILL_AFTER_MS = [150, 600, 1200];
const DEPOSITORS = 8;
/** Deposits each depositor keeps in flight (sent, no reply yet). */
const WINDOW = 16;
/** Acknowledged deposits re-sent after each restart. */
const RETRIED_ACKNOWLEDGED = 25;

/** A pipelining client: any number of requests in flight, matched to replies by request id. */
class WireClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (f: Frame) => void; reject: (e: Error) => void }>();
  challenge: Uint8Array = new Uint8Array(32);
  onDeliver: (f: DeliverFrame) => void = () => {};
  /** Frames that did not decode, or answered no request. */
  readonly problems: string[] = [];
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => {
      let f: Frame;
      try {
        f = decodeFrame(new Uint8Array(data), { maxCiphertext: 16 * 1024 * 1024 });
      } catch (e) {
        this.problems.push(`undecodable frame: ${(e as Error).message}`);
        return;
      }
      if (f.type === "deliver") return this.onDeliver(f);
      const w = this.waiting.get(f.requestId);
      if (!w) {
        this.problems.push(`unexpected ${f.type} for request ${f.requestId}`);
        return;
      }
      this.waiting.delete(f.requestId);
      w.resolve(f);
    });
    ws.on("error", () => {});
    this.closed = new Promise((resolve) =>
      ws.once("close", (code) => {
        for (const w of this.waiting.values()) w.reject(new Error("connection closed"));
        this.waiting.clear();
        resolve(code);
      }),
    );
  }

  static async connect(port: number): Promise<WireClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const client = new WireClient(ws);
    const welcome = await client.request({ type: "hello", requestId: 0, maxVersion: 1 });
    if (welcome.type !== "welcome") throw new Error(`expected welcome, got ${welcome.type}`);
    client.challenge = welcome.challenge;
    return client;
  }

  get inFlight(): number {
    return this.waiting.size;
  }

  request(frame: Frame): Promise<Frame> {
    if (this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error("connection closed"));
    const requestId = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(requestId, { resolve, reject });
      this.ws.send(encodeFrame({ ...frame, requestId } as Frame));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Resolves whether a TCP connection to the port is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}

/** kill -9 of the relay process; its port must then refuse connections. */
async function crash(relay: RelayProcess): Promise<void> {
  expect(await relay.stop("SIGKILL")).toBe("SIGKILL");
  expect(await refused(relay.port), "the killed relay still accepts connections").toBe(true);
}

interface Sent {
  readonly text: string;
  readonly round: number;
  readonly clientMessageId: Uint8Array;
  readonly ciphertext: Uint8Array;
  depositOk: boolean;
  ackOk: boolean;
  deliveries: number;
  /** Relay processes (epochs) that delivered it. */
  readonly epochs: number[];
}

/** Everything sent and delivered over the whole run, keyed by ciphertext (each one is unique). */
class Ledger {
  readonly byText = new Map<string, Sent>();
  readonly violations: string[] = [];

  create(round: number, depositor: number, seq: number): Sent {
    const text = `crash/r${round}/d${depositor}/${seq}/${randomBytes(4 + (seq % 64)).toString("hex")}`;
    const s: Sent = {
      text,
      round,
      clientMessageId: randomBytes(16),
      ciphertext: new TextEncoder().encode(text),
      depositOk: false,
      ackOk: false,
      deliveries: 0,
      epochs: [],
    };
    this.byText.set(text, s);
    return s;
  }

  delivered(f: DeliverFrame, epoch: number): Sent | undefined {
    const text = Buffer.from(f.ciphertext).toString("utf8");
    const s = this.byText.get(text);
    if (!s) {
      this.violations.push(`unknown ciphertext delivered: ${JSON.stringify(text.slice(0, 80))}`);
      return undefined;
    }
    if (s.ackOk) this.violations.push(`delivered again after its ack was confirmed: ${text}`);
    if (s.epochs.includes(epoch)) this.violations.push(`delivered twice by relay process ${epoch}: ${text}`);
    s.deliveries++;
    s.epochs.push(epoch);
    return s;
  }

  ofRound(round: number): Sent[] {
    return [...this.byText.values()].filter((s) => s.round === round);
  }
}

describe("crash safety: kill -9 under deposit load, real process and real SQLite file", () => {
  let dataDir = "";
  const key = MailboxKey.generate();
  const ledger = new Ledger();
  let epoch = 0;
  let relays: RelayProcess[] = [];
  let clients: WireClient[] = [];

  const start = async () => {
    const relay = await startRelay([
      "--storage",
      "sqlite",
      "--data-dir",
      dataDir,
      "--rate-limit",
      "1000000",
      "--mailbox-max-messages",
      "1000000",
    ]);
    relays.push(relay);
    return { relay, epoch: ++epoch };
  };
  const client = async (port: number) => {
    const c = await WireClient.connect(port);
    clients.push(c);
    return c;
  };

  /** Subscribes as the owner and acks every delivery (pipelined), recording all of it. */
  const owner = async (port: number, epochOf: number) => {
    const c = await client(port);
    c.onDeliver = (f) => {
      if (toHex(f.address) !== key.addressHex) ledger.violations.push(`delivered from ${toHex(f.address)}`);
      const s = ledger.delivered(f, epochOf);
      c.request({ type: "ack", requestId: 0, address: key.address, messageId: f.messageId }).then(
        (r) => {
          if (r.type === "ok" && s) s.ackOk = true;
          else if (r.type !== "ok") ledger.violations.push(`ack answered ${r.type} ${JSON.stringify(r)}`);
        },
        () => {}, // the relay was killed with the ack in flight
      );
    };
    return c;
  };

  /** Deposits with WINDOW requests in flight until the connection dies. */
  const depositor = (c: WireClient, round: number, index: number) => {
    let seq = 0;
    const next = () => {
      if (c.ws.readyState !== WebSocket.OPEN) return;
      const s = ledger.create(round, index, seq++);
      c.request({
        type: "deposit",
        requestId: 0,
        address: key.address,
        clientMessageId: s.clientMessageId,
        ciphertext: s.ciphertext,
      }).then(
        (r) => {
          if (r.type === "ok") s.depositOk = true;
          else ledger.violations.push(`deposit answered ${JSON.stringify(r)}`);
          next();
        },
        () => {}, // killed in flight: neither acknowledged nor refused
      );
    };
    for (let i = 0; i < WINDOW; i++) next();
  };

  /** Waits until the relay stores nothing and the owner has no ack in flight. */
  const drained = (port: number, o: WireClient) =>
    until(
      "the owner to drain the mailbox",
      async () => {
        return o.inFlight === 0 && (await metric(port, "parley_relay_stored_messages")) === 0;
      },
      20_000,
    );

  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), "parley-crash-"));
  });

  afterEach(async () => {
    for (const c of clients) c.close();
    clients = [];
    await Promise.all(relays.map((r) => r.stop()));
    relays = [];
  });

  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  for (const [round, killAfter] of KILL_AFTER_MS.entries()) {
    it(`round ${round + 1}: kill -9 after ${killAfter} ms of load loses no acknowledged deposit`, async () => {
      // ---- load, then SIGKILL
      const first = await start();
      const o1 = await owner(first.relay.port, first.epoch);
      if (round === 0) {
        const created = await o1.request({
          type: "createMailbox",
          requestId: 0,
          ownerKey: key.publicKey,
          signature: key.prove(MailboxAction.create, o1.challenge),
        });
        expect(created.type).toBe("ok");
      }
      const subscribe = (c: WireClient) =>
        c.request({
          type: "subscribe",
          requestId: 0,
          address: key.address,
          signature: key.prove(MailboxAction.subscribe, c.challenge),
        });
      // From round 2 on this also shows the mailbox itself survived the earlier kills.
      expect((await subscribe(o1)).type).toBe("ok");
      const depositors = await Promise.all(
        Array.from({ length: DEPOSITORS }, () => client(first.relay.port)),
      );
      depositors.forEach((c, i) => {
        depositor(c, round, i);
      });
      await sleep(killAfter);
      await crash(first.relay);
      await Promise.all([o1, ...depositors].map((c) => c.closed));

      const sent = ledger.ofRound(round);
      const acknowledged = sent.filter((s) => s.depositOk);
      const unacknowledged = sent.filter((s) => !s.depositOk);
      expect(acknowledged.length, "no deposit was acknowledged before the kill").toBeGreaterThan(0);
      expect(unacknowledged.length, "no deposit was in flight at the kill").toBeGreaterThan(0);

      // ---- restart on the same data directory: everything acknowledged is there
      const second = await start();
      const o2 = await owner(second.relay.port, second.epoch);
      expect((await subscribe(o2)).type).toBe("ok");
      await drained(second.relay.port, o2);
      const lost = acknowledged.filter((s) => s.deliveries === 0);
      expect(lost.length, `acknowledged deposits lost in the crash, e.g. ${lost[0]?.text}`).toBe(0);
      // Deposits without an OK that were committed anyway have been delivered by now.
      const committedAnyway = unacknowledged.filter((s) => s.deliveries > 0).length;

      // ---- retries, as a sender would: in-flight deposits and some acknowledged ones, same ids
      const retrier = await client(second.relay.port);
      const pick = [...acknowledged].sort(() => Math.random() - 0.5).slice(0, RETRIED_ACKNOWLEDGED);
      const deliveriesBefore = pick.map((s) => s.deliveries);
      const replies = await Promise.all(
        [...unacknowledged, ...pick].map((s) =>
          retrier.request({
            type: "deposit",
            requestId: 0,
            address: key.address,
            clientMessageId: s.clientMessageId,
            ciphertext: s.ciphertext,
          }),
        ),
      );
      expect(replies.filter((r) => r.type !== "ok")).toEqual([]);
      await drained(second.relay.port, o2);
      expect(await metric(second.relay.port, "parley_relay_duplicate_deposits_total")).toBe(
        pick.length + committedAnyway,
      );
      // A retried acknowledged deposit was not stored again: it was not delivered again.
      expect(pick.map((s) => s.deliveries)).toEqual(deliveriesBefore);

      expect(sent.filter((s) => s.deliveries === 0).length, "sent but never delivered").toBe(0);
      expect(ledger.violations).toEqual([]);
      for (const c of [o1, ...depositors, o2, retrier]) expect(c.problems).toEqual([]);
      expect(await second.relay.stop()).toBe(0);
      console.log(
        `round ${round + 1}: ${acknowledged.length} acknowledged, ${unacknowledged.length} in flight ` +
          `(${committedAnyway} committed anyway), ${sent.filter((s) => s.deliveries > 1).length} redelivered`,
      );
    });
  }
});
