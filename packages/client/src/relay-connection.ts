// One WebSocket connection to one relay (PROTOCOL.md §8): hello/welcome, requests matched to
// replies by request id, deliveries pushed as events. It knows nothing of contacts or sessions.
import { EventEmitter } from "node:events";
import { connect as tcpConnect } from "node:net";
import {
  blobTokenHash,
  DecodeError,
  type DeliverFrame,
  decodeFrame,
  depositTokenHash,
  encodeFrame,
  FRAME_VERSION,
  type Frame,
  MailboxAction,
  type MailboxKey,
  type RelayErrorName,
  type WelcomeFrame,
} from "@parley/protocol";
import WebSocket from "ws";
import type { BlobInfo, NewBlob } from "./core/blobs.js";
import { printable } from "./text.js";

/** The relay answered a request with an error frame. */
export class RelayRequestError extends Error {
  constructor(
    readonly code: RelayErrorName,
    message: string,
  ) {
    super(message);
    this.name = "RelayRequestError";
  }
}

/** The relay could not be reached, or the connection broke before a reply. */
export class RelayUnreachableError extends Error {
  /** Why, in words a status bar can show ("connection refused", "no answer within 5 s"). */
  readonly reason: string;
  constructor(message: string, options?: { cause?: unknown; reason?: string }) {
    super(message, options);
    this.name = "RelayUnreachableError";
    this.reason = options?.reason ?? message;
  }
}

/** A network failure in words, from a Node error code (ECONNREFUSED, ENOTFOUND, …) or message. */
export function networkProblem(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "EPIPE":
      return "connection reset";
    case "ENOTFOUND":
    case "EAI_NONAME":
      return "host not found";
    case "EAI_AGAIN":
      return "name lookup failed (no network?)";
    case "ETIMEDOUT":
      return "connection timed out";
    case "EHOSTUNREACH":
    case "EHOSTDOWN":
      return "host unreachable";
    case "ENETUNREACH":
    case "ENETDOWN":
      return "network unreachable";
    case "CERT_HAS_EXPIRED":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `its TLS certificate is not valid (${code})`;
    default:
      if (code) return code;
      // Every address of a host refused (IPv6 and IPv4): say why the first did.
      if (e instanceof AggregateError && e.errors.length > 0) return networkProblem(e.errors[0]);
      return printable((e as Error | undefined)?.message || String(e));
  }
}

type Request = Exclude<
  Frame,
  { type: "welcome" | "ok" | "deliver" | "error" | "blobInfo" | "chunk" } | { type: "hello" }
>;
/** A reply that answers a request: ok, or a blob request's blobInfo or chunk. */
type Reply = Extract<Frame, { type: "ok" | "blobInfo" | "chunk" }>;
type Pending = { resolve: (reply: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export interface ConnectOptions {
  /** Connection and hello timeout (ms). */
  timeoutMs?: number;
  /** Per-request timeout (ms). */
  requestTimeoutMs?: number;
  /**
   * A ping every this many ms; a connection that has not answered the previous one by then is
   * dropped (a relay or network that vanished without closing it). 0 turns it off.
   */
  heartbeatMs?: number;
}

/** How long a blobDone or deleteBlob may take: the relay deletes every chunk before it answers. */
const BLOB_DELETE_TIMEOUT_MS = 120_000;

/** Default heartbeat: a silent relay is noticed within two of these. */
export const HEARTBEAT_MS = 15_000;

export interface RelayConnectionEvents {
  deliver: [DeliverFrame];
  close: [reason: string];
}

export class RelayConnection extends EventEmitter<RelayConnectionEvents> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedReason: string | null = null;
  private heartbeat: NodeJS.Timeout | null = null;

  private constructor(
    readonly url: string,
    private readonly ws: WebSocket,
    readonly welcome: WelcomeFrame,
    private readonly requestTimeoutMs: number,
    heartbeatMs: number,
  ) {
    super();
    ws.on("message", (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on("close", (code) => this.onClose(closeReason(code)));
    ws.on("error", (e) => this.onClose(networkProblem(e)));
    if (heartbeatMs > 0) {
      let answered = true;
      ws.on("pong", () => {
        answered = true;
      });
      this.heartbeat = setInterval(() => {
        if (!answered) {
          ws.terminate();
          this.onClose(`no answer to a ping within ${duration(heartbeatMs)}`);
          return;
        }
        answered = false;
        ws.ping();
      }, heartbeatMs);
      this.heartbeat.unref();
    }
  }

  /** Connects and says hello; resolves once the relay's welcome arrived. */
  static open(url: string, options: ConnectOptions = {}): Promise<RelayConnection> {
    const timeoutMs = options.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(url, {
          handshakeTimeout: timeoutMs,
          maxPayload: 1 << 20,
          perMessageDeflate: false,
        });
      } catch (e) {
        const reason = networkProblem(e);
        reject(new RelayUnreachableError(`cannot connect to ${url}: ${reason}`, { cause: e, reason }));
        return;
      }
      const fail = (why: string, cause?: unknown) => {
        clearTimeout(timer);
        ws.removeAllListeners();
        ws.on("error", () => {});
        ws.terminate();
        reject(new RelayUnreachableError(`cannot reach relay ${url}: ${why}`, { cause, reason: why }));
      };
      const timer = setTimeout(() => fail(`no welcome within ${duration(timeoutMs)}`), timeoutMs);
      ws.once("error", (e) => fail(networkProblem(e), e));
      ws.once("close", () => fail("connection closed before welcome"));
      ws.once("unexpected-response", (_req, res) => fail(upgradeRefused(res.statusCode ?? 0)));
      ws.once("open", () => ws.send(encodeFrame({ type: "hello", requestId: 1, maxVersion: FRAME_VERSION })));
      ws.once("message", (data) => {
        let frame: Frame;
        try {
          frame = decodeFrame(data as Buffer);
        } catch (e) {
          return fail(`not a Parley relay (${(e as Error).message})`, e);
        }
        if (frame.type === "error") return fail(`refused hello: ${frame.code}`);
        if (frame.type !== "welcome" || frame.version !== FRAME_VERSION) {
          return fail("not a Parley v1 relay (no welcome)");
        }
        clearTimeout(timer);
        ws.removeAllListeners();
        resolve(
          new RelayConnection(
            url,
            ws,
            frame,
            options.requestTimeoutMs ?? 10_000,
            options.heartbeatMs ?? HEARTBEAT_MS,
          ),
        );
      });
    });
  }

  get isOpen(): boolean {
    return this.closedReason === null;
  }

  createMailbox(key: MailboxKey): Promise<void> {
    return this.request({
      type: "createMailbox",
      requestId: 0,
      ownerKey: key.publicKey,
      signature: key.prove(MailboxAction.create, this.welcome.challenge),
    });
  }

  subscribe(key: MailboxKey): Promise<void> {
    return this.request({
      type: "subscribe",
      requestId: 0,
      address: key.address,
      signature: key.prove(MailboxAction.subscribe, this.welcome.challenge),
    });
  }

  /**
   * From now on the mailbox takes deposits only with `token` (PROTOCOL.md §8.1 step 8). The relay
   * keeps only its hash.
   */
  setDepositToken(key: MailboxKey, token: Uint8Array): Promise<void> {
    const tokenHash = depositTokenHash(token);
    return this.request({
      type: "setDepositToken",
      requestId: 0,
      address: key.address,
      tokenHash,
      signature: key.prove(MailboxAction.setDepositToken, this.welcome.challenge, tokenHash),
    });
  }

  deleteMailbox(key: MailboxKey): Promise<void> {
    return this.request({
      type: "deleteMailbox",
      requestId: 0,
      address: key.address,
      signature: key.prove(MailboxAction.delete, this.welcome.challenge),
    });
  }

  /**
   * Resolves once the relay has durably stored the ciphertext (its `ok`). With the mailbox's
   * deposit token, as its owner gave it, when there is one.
   */
  deposit(
    address: Uint8Array,
    clientMessageId: Uint8Array,
    ciphertext: Uint8Array,
    token?: Uint8Array,
  ): Promise<void> {
    return this.request(
      token
        ? { type: "tokenDeposit", requestId: 0, address, token, clientMessageId, ciphertext }
        : { type: "deposit", requestId: 0, address, clientMessageId, ciphertext },
    );
  }

  ack(address: Uint8Array, messageId: Uint8Array): Promise<void> {
    return this.request({ type: "ack", requestId: 0, address, messageId });
  }

  // ------------------------------------------------------------ blobs (PROTOCOL.md §14.2)

  /** Creates a blob; the relay keeps only the tokens' hashes. A repeat with the same fields is a retry. */
  createBlob(blob: NewBlob): Promise<void> {
    return this.request({
      type: "createBlob",
      requestId: 0,
      blobId: blob.blobId,
      writeTokenHash: blobTokenHash(blob.writeToken),
      chunkCount: blob.chunkCount,
      sealedSize: blob.sealedSize,
      readTokenHashes: blob.readTokens.map(blobTokenHash),
    });
  }

  putChunk(
    blobId: Uint8Array,
    writeToken: Uint8Array,
    index: number,
    sealedChunk: Uint8Array,
  ): Promise<void> {
    return this.request({ type: "putChunk", requestId: 0, blobId, writeToken, index, sealedChunk });
  }

  async blobStatus(blobId: Uint8Array, token: Uint8Array): Promise<BlobInfo> {
    const reply = await this.ask({ type: "blobStatus", requestId: 0, blobId, token });
    if (reply.type !== "blobInfo")
      throw new RelayUnreachableError(`relay ${this.url}: answered blobStatus with ${reply.type}`);
    return {
      chunkCount: reply.chunkCount,
      written: reply.written,
      readersLeft: reply.readersLeft,
      expiresAt: reply.expiresAt,
    };
  }

  async getChunk(blobId: Uint8Array, readToken: Uint8Array, index: number): Promise<Uint8Array> {
    const reply = await this.ask({ type: "getChunk", requestId: 0, blobId, readToken, index });
    if (reply.type !== "chunk" || reply.index !== index)
      throw new RelayUnreachableError(`relay ${this.url}: answered getChunk ${index} with something else`);
    return reply.sealedChunk;
  }

  /** The relay deletes every chunk before it answers: for a 1 GiB blob, here, past the usual 10 s. */
  blobDone(blobId: Uint8Array, readToken: Uint8Array): Promise<void> {
    return this.request({ type: "blobDone", requestId: 0, blobId, readToken }, BLOB_DELETE_TIMEOUT_MS);
  }

  deleteBlob(blobId: Uint8Array, writeToken: Uint8Array): Promise<void> {
    return this.request({ type: "deleteBlob", requestId: 0, blobId, writeToken }, BLOB_DELETE_TIMEOUT_MS);
  }

  close(): void {
    if (this.closedReason !== null) return;
    this.ws.close(1000);
    this.onClose("closed by the client");
  }

  /** A request answered by `ok`. */
  private async request(frame: Request, timeoutMs = this.requestTimeoutMs): Promise<void> {
    const reply = await this.ask(frame, timeoutMs);
    if (reply.type !== "ok")
      throw new RelayUnreachableError(`relay ${this.url}: answered ${frame.type} with ${reply.type}`);
  }

  /** Sends a request; resolves with its reply (ok, blobInfo, chunk), rejects on an error frame. */
  private ask(frame: Request, timeoutMs = this.requestTimeoutMs): Promise<Reply> {
    if (this.closedReason !== null) {
      return Promise.reject(new RelayUnreachableError(`relay ${this.url}: ${this.closedReason}`));
    }
    const requestId = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new RelayUnreachableError(`relay ${this.url}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      this.ws.send(encodeFrame({ ...frame, requestId } as Frame));
    });
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary || this.closedReason !== null) return;
    let frame: Frame;
    try {
      frame = decodeFrame(data, { maxCiphertext: this.welcome.maxCiphertext });
    } catch (e) {
      if (e instanceof DecodeError) return; // a malformed push from an untrusted relay is ignored
      throw e;
    }
    switch (frame.type) {
      case "deliver":
        this.emit("deliver", frame);
        return;
      case "ok":
      case "blobInfo":
      case "chunk":
      case "error": {
        const p = this.pending.get(frame.requestId);
        if (!p) return;
        this.pending.delete(frame.requestId);
        clearTimeout(p.timer);
        if (frame.type === "error") p.reject(new RelayRequestError(frame.code, printable(frame.message)));
        else p.resolve(frame);
        return;
      }
      default:
        return; // client frames or a second welcome from a relay are ignored (PROTOCOL.md §8.4)
    }
  }

  private onClose(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RelayUnreachableError(`relay ${this.url}: ${reason}`));
    }
    this.pending.clear();
    this.emit("close", reason);
  }
}

const duration = (ms: number) => (ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`);

/** Why a WebSocket closed, in words (RFC 6455 §7.4.1 codes). */
function closeReason(code: number): string {
  switch (code) {
    case 1000:
      return "the relay closed the connection";
    case 1001:
      return "the relay is going away (restarting or shutting down)";
    case 1006:
      return "the connection was lost";
    case 1008:
      return "the relay closed the connection (policy violation)";
    case 1009:
      return "the relay closed the connection (frame too large)";
    case 1011:
      return "the relay closed the connection (internal error)";
    default:
      return `connection closed (${code})`;
  }
}

/**
 * Can a TCP connection to the relay's host and port be opened? null when it can, else why not in
 * words. One SYN and a close: cheap enough to ask every second while a relay is down.
 */
export function probeRelay(url: string, timeoutMs = 2000): Promise<string | null> {
  let host: string;
  let port: number;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[(.*)\]$/, "$1");
    port = u.port ? Number(u.port) : u.protocol === "wss:" ? 443 : 80;
  } catch {
    return Promise.resolve("not a relay URL");
  }
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (problem: string | null) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on("error", () => {});
      socket.destroy();
      resolve(problem);
    };
    const timer = setTimeout(() => done(`no answer within ${duration(timeoutMs)}`), timeoutMs);
    socket.once("connect", () => done(null));
    socket.once("error", (e) => done(networkProblem(e)));
  });
}

/** Is the relay on this machine (a loopback address)? */
export function isLoopbackRelay(url: string): boolean {
  try {
    const host = new URL(url).hostname.replace(/^\[(.*)\]$/, "$1");
    return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}

/** The HTTP(S) address of a relay's transparency statement. */
export function transparencyUrl(relayUrl: string): string {
  const u = new URL(relayUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.pathname = `${u.pathname.replace(/\/+$/, "")}/transparency`;
  u.search = "";
  return u.toString();
}

/**
 * Why a relay answered the WebSocket upgrade with HTTP `status`, in words: the reference relay
 * answers 503 when it takes no more connections or is shutting down, and 429 when it takes no more
 * from this address (PROTOCOL.md §8.4). Either way the relay is tried again later.
 */
export function upgradeRefused(status: number): string {
  if (status === 429)
    return "HTTP 429: the relay takes no more connections from this network address for now";
  if (status === 503) return "HTTP 503: the relay takes no more connections for now (full, or shutting down)";
  return `HTTP ${status} instead of a WebSocket`;
}
