// What the hostile-load tests (hardening.test.ts) share: an honest pair of clients that deposits and
// receives all through an attack, readings of the relay process from /proc (resident memory, open
// files), and raw sockets from other loopback addresses (127.0.0.2 and up: each is a source of its
// own to the relay, while the honest clients use 127.0.0.1).
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import {
  decodeFrame,
  depositTokenHash,
  encodeFrame,
  type Frame,
  MailboxAction,
  MailboxKey,
} from "@parley/protocol";
import WebSocket from "ws";
import { sleep, until } from "./helpers.js";

export const MiB = 1024 * 1024;

/** The relay's resident memory, from /proc/<pid>/status. */
export function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** The relay's open file descriptors. */
export const openFiles = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** Samples the relay's resident memory every few milliseconds; `peak` is the largest seen. */
export class RssWatch {
  peak: number;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.peak = rss(pid);
    this.timer = setInterval(() => this.sample(), 10);
  }

  sample(): number {
    let now: number;
    try {
      now = rss(this.pid);
    } catch {
      clearInterval(this.timer); // the relay is gone (the test failed and stopped it)
      return 0;
    }
    this.peak = Math.max(this.peak, now);
    return now;
  }

  stop(): number {
    clearInterval(this.timer);
    return this.sample();
  }
}

/** A WebSocket from `from` (a loopback address), with every frame it receives and how it closed. */
export class Wire {
  readonly frames: Frame[] = [];
  closeCode: number | undefined;
  readonly closed: Promise<number>;
  private nextId = 1;
  private readonly waiting = new Map<number, (f: Frame) => void>();
  onDeliver: (f: Extract<Frame, { type: "deliver" }>) => void = () => {};
  challenge: Uint8Array = new Uint8Array(32);

  private constructor(readonly ws: WebSocket) {
    ws.on("error", () => {});
    ws.on("message", (data: Buffer) => {
      const f = decodeFrame(new Uint8Array(data), { maxCiphertext: 16 * MiB });
      if (f.type === "deliver") return this.onDeliver(f);
      this.frames.push(f);
      const w = this.waiting.get(f.requestId);
      this.waiting.delete(f.requestId);
      w?.(f);
    });
    this.closed = new Promise((resolve) =>
      ws.once("close", (code) => {
        this.closeCode = code;
        resolve(code);
      }),
    );
  }

  /** Opens a connection (and says hello unless told not to); rejects with the HTTP status if refused. */
  static async open(
    port: number,
    from = "127.0.0.1",
    options: { hello?: boolean; headers?: Record<string, string> } = {},
  ): Promise<Wire> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { localAddress: from, headers: options.headers });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => {
        res.resume();
        ws.terminate();
        reject(new Refused(res.statusCode ?? 0));
      });
      ws.once("error", reject);
    });
    const wire = new Wire(ws);
    if (options.hello !== false) {
      const welcome = await wire.request({ type: "hello", requestId: 0, maxVersion: 1 });
      if (welcome.type !== "welcome") throw new Error(`no welcome: ${welcome.type}`);
      wire.challenge = welcome.challenge;
    }
    return wire;
  }

  /** Sends a request and resolves with its answer (or rejects if none comes within `timeoutMs`). */
  request(frame: Frame, timeoutMs = 15_000): Promise<Frame> {
    const requestId = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${frame.type} ${requestId}`)), timeoutMs);
      this.waiting.set(requestId, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      this.send({ ...frame, requestId } as Frame);
    });
  }

  /** Sends without waiting for an answer; returns the request id. */
  send(frame: Frame): number {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(encodeFrame(frame));
    return frame.requestId;
  }

  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }

  close(): void {
    this.ws.terminate();
  }
}

export class Refused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused: HTTP ${status}`);
  }
}

/** A raw TCP connection from `from`; `closedByRelay` resolves when the relay ends or resets it. */
export function rawSocket(
  port: number,
  from: string,
): Promise<{ socket: Socket; closedByRelay: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", localAddress: from });
    socket.on("error", () => {});
    const closedByRelay = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("connect", () => resolve({ socket, closedByRelay }));
    socket.once("error", reject);
  });
}

/**
 * The honest side: an owner subscribed to its mailbox, acking every delivery, and a sender that
 * deposits one numbered message after another (each waiting for its `ok`), both from 127.0.0.1.
 * `finish()` stops the sender, waits until every deposit was delivered, and says what happened.
 */
export class Honest {
  sent = 0;
  readonly delivered = new Set<number>();
  readonly problems: string[] = [];
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  private constructor(
    private readonly owner: Wire,
    private readonly sender: Wire,
    private readonly key: MailboxKey,
    private readonly token: Uint8Array | undefined,
  ) {}

  /** The honest mailbox's address (an attacker may know it). */
  get address(): Uint8Array {
    return this.key.address;
  }

  /** With `token`, the owner sets a deposit token and the sender deposits with it. */
  static async start(port: number, options: { token?: boolean } = {}): Promise<Honest> {
    const key = MailboxKey.generate();
    const owner = await Wire.open(port);
    const sender = await Wire.open(port);
    const token = options.token ? randomBytes(32) : undefined;
    const honest = new Honest(owner, sender, key, token);
    owner.onDeliver = (f) => {
      honest.delivered.add(Buffer.from(f.ciphertext).readUInt32BE(0));
      owner.send({
        type: "ack",
        requestId: 0x7fff0000 + (honest.delivered.size % 0xffff),
        address: key.address,
        messageId: f.messageId,
      });
    };
    for (const frame of [
      {
        type: "createMailbox",
        requestId: 0,
        ownerKey: key.publicKey,
        signature: key.prove(MailboxAction.create, owner.challenge),
      },
      {
        type: "subscribe",
        requestId: 0,
        address: key.address,
        signature: key.prove(MailboxAction.subscribe, owner.challenge),
      },
      ...(token
        ? [
            {
              type: "setDepositToken",
              requestId: 0,
              address: key.address,
              tokenHash: depositTokenHash(token),
              signature: key.prove(MailboxAction.setDepositToken, owner.challenge, depositTokenHash(token)),
            },
          ]
        : []),
    ] as Frame[]) {
      const answer = await owner.request(frame);
      if (answer.type !== "ok")
        throw new Error(`honest owner: ${frame.type} answered ${JSON.stringify(answer)}`);
    }
    for (const w of [owner, sender]) {
      void w.closed.then((code) => {
        if (!honest.stopped) honest.problems.push(`an honest connection was closed (${code})`);
      });
    }
    honest.loop = honest.run();
    return honest;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const ciphertext = randomBytes(200);
      ciphertext.writeUInt32BE(this.sent, 0);
      try {
        const address = this.key.address;
        const clientMessageId = randomBytes(16);
        const answer = await this.sender.request(
          this.token
            ? { type: "tokenDeposit", requestId: 0, address, token: this.token, clientMessageId, ciphertext }
            : { type: "deposit", requestId: 0, address, clientMessageId, ciphertext },
        );
        if (answer.type === "ok") this.sent++;
        else
          this.problems.push(
            `deposit ${this.sent} answered ${answer.type === "error" ? answer.code : answer.type}`,
          );
      } catch (e) {
        this.problems.push(`deposit ${this.sent}: ${(e as Error).message}`);
        return;
      }
      await sleep(20);
    }
  }

  /** Stops depositing, waits until every deposit has arrived, and closes both connections. */
  async finish(): Promise<{ sent: number; delivered: number; problems: string[] }> {
    this.stopped = true;
    await this.loop;
    await until("every honest message to arrive", () => this.delivered.size >= this.sent, 30_000).catch(
      () => {},
    );
    this.owner.close();
    this.sender.close();
    const missing = Array.from({ length: this.sent }, (_, i) => i).filter((i) => !this.delivered.has(i));
    if (missing.length > 0) this.problems.push(`${missing.length} messages never arrived`);
    return { sent: this.sent, delivered: this.delivered.size, problems: this.problems };
  }
}
