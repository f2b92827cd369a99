// The load generator's side of the relay protocol, shared by relay-bench.ts and scale-bench.ts: a
// WebSocket client with request/reply for set-up and plain callbacks for the measured traffic, and
// the hot-path frames (deposit, ack) built in place rather than through encodeFrame. A deposit's
// ciphertext carries its send time and a tag (the sender's index), read back from the deliver.
import { randomBytes } from "node:crypto";
import { decodeFrame, encodeFrame, type Frame, MailboxAction, type MailboxKey } from "@parley/protocol";
import WebSocket from "ws";

/** Ciphertext bytes per message (about one padded 256-byte payload in an envelope). */
export const CIPHERTEXT_BYTES = 300;

// ---- frames -------------------------------------------------------------------------------------

const TYPE_DEPOSIT = 0x03;
const TYPE_ACK = 0x06;
const TYPE_OK = 0x82;
const TYPE_DELIVER = 0x83;
const TYPE_ERROR = 0x84;
/** Offset of the ciphertext in a relay deliver frame, and in a deposit frame (what the bare forwarder forwards). */
const DELIVER_CIPHERTEXT = 62;
const DEPOSIT_CIPHERTEXT = 54;
const DEPOSIT_LENGTH = DEPOSIT_CIPHERTEXT + CIPHERTEXT_BYTES;
const ACK_LENGTH = 54;

const RUN_ID = randomBytes(8);
const FILLER = randomBytes(CIPHERTEXT_BYTES);
let clientMessageCounter = 0;

/**
 * A deposit frame built in place (header, address, client message id = run id || counter, then the
 * ciphertext: f64 send time, u32 tag, random filler). checkFrameBuilders() holds it to the protocol.
 */
function depositFrame(requestId: number, address: Uint8Array, sentAt: number, tag: number): Buffer {
  const b = Buffer.allocUnsafe(DEPOSIT_LENGTH);
  b[0] = 1;
  b[1] = TYPE_DEPOSIT;
  b.writeUInt32BE(requestId, 2);
  b.set(address, 6);
  RUN_ID.copy(b, 38);
  const n = clientMessageCounter++;
  b.writeUInt32BE(Math.floor(n / 0x100000000), 46);
  b.writeUInt32BE(n >>> 0, 50);
  FILLER.copy(b, DEPOSIT_CIPHERTEXT);
  b.writeDoubleLE(sentAt, DEPOSIT_CIPHERTEXT);
  b.writeUInt32LE(tag, DEPOSIT_CIPHERTEXT + 8);
  return b;
}

/** An ack for a deliver (relay) or forwarded deposit (bare): both carry address and a 16-byte id at 6..54. */
function ackFrame(requestId: number, pushed: Buffer): Buffer {
  const b = Buffer.allocUnsafe(ACK_LENGTH);
  b[0] = 1;
  b[1] = TYPE_ACK;
  b.writeUInt32BE(requestId, 2);
  pushed.copy(b, 6, 6, 54);
  return b;
}

const ciphertextAt = (pushed: Buffer) =>
  pushed[1] === TYPE_DELIVER ? DELIVER_CIPHERTEXT : DEPOSIT_CIPHERTEXT;
/** The send time (performance.now() of the load generator) a depositFrame() carried. */
export const sentAtOf = (pushed: Buffer) => pushed.readDoubleLE(ciphertextAt(pushed));
/** The tag (the sender's index) a depositFrame() carried. */
export const tagOf = (pushed: Buffer) => pushed.readUInt32LE(ciphertextAt(pushed) + 8);

/** Throws unless depositFrame, ackFrame and the deliver offsets match the protocol's encoder. */
export function checkFrameBuilders(): void {
  const address = randomBytes(32);
  const dep = decodeFrame(depositFrame(7, address, 123.5, 9));
  if (
    dep.type !== "deposit" ||
    dep.requestId !== 7 ||
    Buffer.compare(dep.address, address) !== 0 ||
    dep.ciphertext.length !== CIPHERTEXT_BYTES
  ) {
    throw new Error("depositFrame does not match the protocol's deposit layout");
  }
  const deliver = Buffer.from(
    encodeFrame({
      type: "deliver",
      requestId: 0,
      address,
      messageId: randomBytes(16),
      receivedAt: 1,
      ciphertext: dep.ciphertext,
    }),
  );
  if (sentAtOf(deliver) !== 123.5 || tagOf(deliver) !== 9)
    throw new Error("deliver ciphertext offset is wrong");
  const ack = decodeFrame(ackFrame(8, deliver));
  if (ack.type !== "ack" || Buffer.compare(ack.messageId, deliver.subarray(38, 54)) !== 0) {
    throw new Error("ackFrame does not match the protocol's ack layout");
  }
}

function createMailboxFrame(key: MailboxKey, challenge: Uint8Array): Frame {
  return {
    type: "createMailbox",
    requestId: 0,
    ownerKey: key.publicKey,
    signature: key.prove(MailboxAction.create, challenge),
  };
}

export function subscribeFrame(key: MailboxKey, challenge: Uint8Array): Frame {
  return {
    type: "subscribe",
    requestId: 0,
    address: key.address,
    signature: key.prove(MailboxAction.subscribe, challenge),
  };
}

// ---- clients --------------------------------------------------------------------------------------

/**
 * What the clients sharing it saw go wrong: error frames no request waited for, by code
 * ("unexpected": any other frame nobody waited for), and connections that closed unasked.
 */
export class Tally {
  errors: Record<string, number> = {};
  unexpectedCloses = 0;
}

/** Throws unless `p` resolves to an `ok`. */
export async function expectOk(p: Promise<Frame>, what: string): Promise<void> {
  const f = await p;
  if (f.type !== "ok") throw new Error(`${what}: ${f.type === "error" ? `${f.code} ${f.message}` : f.type}`);
}

/** A client connection: request/reply for set-up, plain callbacks for the measured traffic. */
export class Client {
  challenge: Uint8Array = new Uint8Array(32);
  /** A deliver frame (relay) or a forwarded deposit frame (bare). */
  onPush: ((data: Buffer) => void) | null = null;
  /** An ok or error frame no request waited for (the answers to deposits and acks). */
  onOk: ((requestId: number) => void) | null = null;
  onError: ((requestId: number) => void) | null = null;
  private expectClose = false;
  private nextId = 1;
  private readonly waiting = new Map<number, (f: Frame) => void>();

  private constructor(
    readonly ws: WebSocket,
    private readonly tally: Tally,
  ) {
    ws.on("message", (data: Buffer) => this.handle(data));
    ws.on("error", () => {});
    ws.on("close", () => {
      if (!this.expectClose) tally.unexpectedCloses++;
    });
  }

  /** Connects to 127.0.0.1:`port` and, with `hello` (the relay), says hello and keeps the challenge. */
  static async connect(port: number, tally: Tally, hello = true): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const client = new Client(ws, tally);
    if (hello) {
      const welcome = await client.request({ type: "hello", requestId: 0, maxVersion: 1 });
      if (welcome.type !== "welcome") throw new Error(`expected welcome, got ${welcome.type}`);
      client.challenge = welcome.challenge;
    }
    return client;
  }

  /** The next request id (1..2^32-1, wrapping). */
  id(): number {
    const id = this.nextId;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  /** Sends a frame with a fresh request id; resolves with the frame answering it. */
  request(frame: Frame): Promise<Frame> {
    const requestId = this.id();
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(requestId);
        reject(new Error(`no reply to ${frame.type} within 60 s`));
      }, 60_000);
      this.waiting.set(requestId, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      this.ws.send(encodeFrame({ ...frame, requestId } as Frame));
    });
  }

  /**
   * Sends a deposit to `address` whose ciphertext carries `sentAt` and `tag` (see depositFrame);
   * its answer comes to onOk or onError with `requestId`.
   */
  deposit(address: Uint8Array, sentAt: number, tag: number, requestId = this.id()): void {
    this.ws.send(depositFrame(requestId, address, sentAt, tag));
  }

  /** Acks a frame that came to onPush; the relay's answer comes to onOk or onError. */
  ack(pushed: Buffer): void {
    this.ws.send(ackFrame(this.id(), pushed));
  }

  /** Creates the mailbox of `key`, proving ownership against this connection's challenge. */
  createMailbox(key: MailboxKey): Promise<void> {
    return expectOk(this.request(createMailboxFrame(key, this.challenge)), "createMailbox");
  }

  /** Subscribes this connection to the mailbox of `key`. */
  subscribe(key: MailboxKey): Promise<void> {
    return expectOk(this.request(subscribeFrame(key, this.challenge)), "subscribe");
  }

  close(): void {
    this.expectClose = true;
    this.ws.terminate();
  }

  private handle(data: Buffer): void {
    const type = data[1];
    if (type === TYPE_DELIVER || type === TYPE_DEPOSIT) {
      this.onPush?.(data);
      return;
    }
    const requestId = data.readUInt32BE(2);
    const waiter = this.waiting.get(requestId);
    if (waiter) {
      this.waiting.delete(requestId);
      waiter(decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.length)));
      return;
    }
    const errors = this.tally.errors;
    if (type === TYPE_OK) {
      this.onOk?.(requestId);
    } else if (type === TYPE_ERROR) {
      const f = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.length));
      const code = f.type === "error" ? f.code : "?";
      errors[code] = (errors[code] ?? 0) + 1;
      this.onError?.(requestId);
    } else {
      errors.unexpected = (errors.unexpected ?? 0) + 1;
    }
  }
}
