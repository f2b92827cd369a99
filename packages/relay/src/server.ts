// The relay: HTTP (health, metrics, transparency) and the WebSocket wire protocol on one port.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, BlockList, Socket } from "node:net";
import type { Duplex } from "node:stream";
import {
  DecodeError,
  decodeFrame,
  depositTokenHash,
  encodeFrame,
  FRAME_VERSION,
  type Frame,
  fromHex,
  isClientFrame,
  MailboxAction,
  mailboxAddress,
  mailboxProofMessage,
  type RelayErrorName,
  toHex,
  verifyMailboxProof,
} from "@parley/protocol";
import { type WebSocket, WebSocketServer } from "ws";
import { BlobService, type ByteBucket, GET_CHUNK_TYPE, PUT_CHUNK_TYPE, uploadBucket } from "./blobs.js";
import { blobStorageCap, maxPayload, type RelayConfig, receiveCap } from "./config.js";
import { verifyEd25519 } from "./ed25519.js";
import { InboundMeter } from "./inbound.js";
import type { Logger } from "./log.js";
import { type CloseReason, RelayMetrics } from "./metrics.js";
import { Pace, sourceKey, sourceOf, trusted, trustList } from "./sources.js";
import { type Storage, StorageUnavailableError, type StoredMessage } from "./storage/types.js";
import { transparencyStatement } from "./transparency.js";

/** Bad frames a connection may send before it is closed (policy violation). */
const MAX_VIOLATIONS = 10;
/** A closed connection whose peer does not complete the closing handshake is dropped after this. */
const CLOSE_GRACE_MS = 2_000;
/** HTTP: a socket with no traffic either way for this long is destroyed (a client that never reads). */
const HTTP_SOCKET_IDLE_MS = 30_000;
/** HTTP: an idle keep-alive socket is closed after this. */
const KEEP_ALIVE_MS = 5_000;
/** TCP connections one source may hold beyond its WebSocket limit (HTTP requests, upgrades on the way). */
const SOCKETS_PER_SOURCE_EXTRA = 16;
/** File descriptors left for everything that is not a client socket (storage files, Redis, stdio). */
const FD_MARGIN = 64;
/** Reading from a connection pauses while this much is queued to it, until its socket drains. */
const PAUSE_READING_AT = 64 * 1024;
/** A proof waits at most this long for its turn (--proof-rate); beyond, it is answered RATE_LIMITED. */
const MAX_PROOF_WAIT_MS = 2_000;
/**
 * OpenSSL's "no" to a proof is checked again with noble (see ed25519.ts): at most this many per
 * second for the whole relay, so that bad proofs cannot buy back the cost OpenSSL saves.
 */
const SECOND_OPINIONS_PER_SECOND = 20;
/** Frame type byte of an ack (PROTOCOL.md §8.2), and where its mailbox address and message id sit. */
const ACK_TYPE = 0x06;
const ACK_ADDRESS_OFFSET = 6;
const ACK_ID_OFFSET = ACK_ADDRESS_OFFSET + 32;
/** Messages fetched from storage per delivery round. */
const DELIVERY_BATCH = 100;
/** While the storage is unavailable, failing requests are logged at most once per this many ms. */
const STORAGE_TROUBLE_LOG_MS = 10_000;

interface InFlight {
  /** Mailbox (hex). */
  readonly key: string;
  readonly size: number;
  readonly expiresAt: number;
  /** An ack of it already went through without a rate-limit token: a repeat pays like any frame. */
  ackExempted: boolean;
}

/** One WebSocket connection's state. */
class Connection {
  readonly challenge = randomBytes(32);
  helloDone = false;
  alive = true;
  violations = 0;
  tokens: number;
  lastRefill = performance.now();
  /** Mailboxes (hex) this connection proved it owns and subscribed to. */
  readonly subscriptions = new Set<string>();
  /** Delivered, not yet acknowledged, by message id (hex). */
  readonly inflight = new Map<string, InFlight>();
  /** Mailboxes with messages waiting behind a full window: the next ack resumes delivery. */
  readonly backlog = new Set<string>();
  inflightBytes = 0;
  /** Per mailbox: a delivery round is running / another was requested meanwhile. */
  readonly pumping = new Set<string>();
  /** Per mailbox: the seq of the last stored message a delivery round examined. */
  readonly cursors = new Map<string, number>();
  /** Bumped when the cursors are cleared: a round that read before that must not set one again. */
  cursorEpoch = 0;
  readonly pumpAgain = new Set<string>();

  /** What this connection has sent that is not yet a complete message (see inbound.ts). */
  readonly meter = new InboundMeter();
  /** Bytes queued to it when last looked at (ws.bufferedAmount). */
  queued = 0;
  /** Reading is paused until its socket drains (too much queued to it). */
  readingPaused = false;
  /** Closed by the relay for a limit: nothing it sends is read or counted any more. */
  cut = false;
  /** The relay began the closing handshake (ws reads on until the peer's close frame). */
  closing = false;
  /** When it last sent a frame (performance.now()): no subscription and too long ago is idle. */
  lastFrame = performance.now();
  deadline: NodeJS.Timeout | undefined;
  readonly proofs: Pace;
  /** File chunk bytes it may upload now (--upload-rate; see blobs.ts). */
  readonly upload: ByteBucket;
  /** Blob requests under way (at most MAX_BLOB_REQUESTS; see blobs.ts). */
  blobRequests = 0;

  constructor(
    readonly ws: WebSocket,
    readonly socket: Duplex,
    readonly serial: number,
    readonly burst: number,
    /** Where it comes from (sources.ts); null: a trusted proxy that named no client. */
    readonly source: string | null,
    proofRate: number,
    uploadRate: number,
  ) {
    this.tokens = burst;
    this.proofs = new Pace(proofRate, proofRate * 2);
    this.upload = uploadBucket(uploadRate);
  }
}

/** What the relay keeps per source while it has connections (never logged, never stored). */
interface SourceState {
  connections: number;
  readonly proofs: Pace;
}

/** The soft limit on open files, from /proc/self/limits (Linux); null where that cannot be read. */
function openFileLimit(): number | null {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line ? /^Max open files\s+(\d+|unlimited)/.exec(line)?.[1] : undefined;
    return soft === undefined || soft === "unlimited" ? null : Number(soft);
  } catch {
    return null;
  }
}

export interface RelayServerOptions {
  config: RelayConfig;
  storage: Storage;
  logger: Logger;
  now?: () => number;
}

/**
 * A Parley relay. `listen()` starts it; `drain()` stops accepting, finishes in-flight work and
 * closes everything (the one shutdown path, used for SIGTERM and SIGINT).
 */
export class RelayServer {
  readonly metrics = new RelayMetrics();
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly connections = new Set<Connection>();
  /** Mailbox (hex) -> connections subscribed to it. */
  private readonly subscribers = new Map<string, Set<Connection>>();
  /** Message id (hex) -> connections it is in flight on, so an ack settles it in O(1). */
  private readonly inflight = new Map<string, Set<Connection>>();
  private readonly config: RelayConfig;
  private readonly storage: Storage;
  private readonly log: Logger;
  private readonly now: () => number;
  private draining = false;
  private serial = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly inFlightWork = new Set<Promise<unknown>>();
  private storageTroubleLoggedAt = 0;
  private storageTroubleSuppressed = 0;
  private readonly trust: BlockList;
  /** WebSocket connections at most: --max-connections, or fewer if file descriptors are short. */
  readonly maxConnections: number;
  /** Open TCP connections (HTTP and WebSocket), in all, and per peer address (untrusted peers only). */
  private sockets = 0;
  private readonly socketsByPeer = new Map<string, number>();
  /** Per source, while it has WebSocket connections or proofs booked ahead. */
  private readonly sources = new Map<string, SourceState>();
  /** Unfinished incoming messages held, in all (see inbound.ts), and the connections holding some. */
  private receiveHeld = 0;
  private readonly receiving = new Set<Connection>();
  /** Bytes queued to connections, in all (as last seen per connection), and the connections with some. */
  private sendQueued = 0;
  private readonly sending = new Set<Connection>();
  private readonly secondOpinions = new Pace(SECOND_OPINIONS_PER_SECOND, SECOND_OPINIONS_PER_SECOND);
  private readonly blobs: BlobService<Connection>;
  /** --max-blob-storage as resolved: by default half of the storage cap. */
  readonly maxBlobStorageBytes: number;

  constructor(options: RelayServerOptions) {
    this.config = options.config;
    this.storage = options.storage;
    this.log = options.logger;
    this.now = options.now ?? Date.now;
    this.trust = trustList(this.config.trustProxy);
    this.maxConnections = this.config.maxConnections;
    this.maxBlobStorageBytes = blobStorageCap(this.config, this.storage.capacity.maxBytes);
    this.blobs = new BlobService<Connection>({
      storage: this.storage,
      metrics: this.metrics,
      maxBlobBytes: this.config.maxBlobBytes,
      maxBlobStorageBytes: this.maxBlobStorageBytes,
      retentionSeconds: this.config.ttlSeconds,
      now: this.now,
      send: (conn, frame) => this.send(conn, frame),
      error: (conn, requestId, code, message) => this.error(conn, requestId, code, message),
      takeFrameToken: (conn) => this.takeToken(conn),
    });
    const files = openFileLimit();
    if (files !== null && files - this.config.httpReserve - FD_MARGIN < this.maxConnections) {
      const fit = files - this.config.httpReserve - FD_MARGIN;
      if (fit < 1) {
        throw new Error(
          `only ${files} file descriptors (ulimit -n): not enough for --http-reserve ${this.config.httpReserve} and the relay's own files`,
        );
      }
      this.maxConnections = fit;
      this.log.warn(
        { fileLimit: files, maxConnections: fit, configured: this.config.maxConnections },
        "too few file descriptors for --max-connections: lowered (raise ulimit -n, or LimitNOFILE in systemd)",
      );
    }
    const handshakeMs = this.config.handshakeTimeoutSeconds * 1000;
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handleHttp(req, res);
    // Deadlines for every state of an HTTP socket: the TLS handshake, the request headers (checked
    // every second), an idle keep-alive, and no traffic either way (a client that never reads).
    const httpOptions = {
      headersTimeout: handshakeMs,
      requestTimeout: handshakeMs,
      keepAliveTimeout: KEEP_ALIVE_MS,
      connectionsCheckingInterval: Math.min(1000, handshakeMs),
      maxHeaderSize: 16 * 1024,
    };
    this.http =
      this.config.tlsCert && this.config.tlsKey
        ? createHttpsServer(
            {
              ...httpOptions,
              cert: readFileSync(this.config.tlsCert),
              key: readFileSync(this.config.tlsKey),
              handshakeTimeout: handshakeMs,
            },
            handler,
          )
        : createHttpServer(httpOptions, handler);
    this.http.timeout = HTTP_SOCKET_IDLE_MS;
    this.http.maxHeadersCount = 50;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: maxPayload(this.config),
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.http.on("connection", (socket: Socket) => this.admit(socket));
    this.http.on("upgrade", (req, socket, head) => this.handleUpgrade(req, socket, head));
    // A request that does not parse (or times out) is answered and the socket destroyed, not merely
    // ended: a peer that never closes its side must not keep it.
    this.http.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
      const status =
        err.code === "HPE_HEADER_OVERFLOW"
          ? "431 Request Header Fields Too Large"
          : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
            ? "408 Request Timeout"
            : "400 Bad Request";
      const started = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
      if (socket.writable && !started) socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
      socket.destroy();
    });
  }

  /**
   * Every TCP connection: within the total (WebSocket slots plus the HTTP reserve) and within its
   * peer's share, or destroyed at once. A trusted proxy's connections count only in the total.
   */
  private admit(socket: Socket): void {
    const address = socket.remoteAddress ?? "";
    const peer = trusted(this.trust, address) ? null : sourceKey(address);
    if (this.sockets >= this.maxConnections + this.config.httpReserve) {
      this.metrics.refusedSockets.inc({ reason: "limit" });
      socket.destroy();
      return;
    }
    if (peer !== null) {
      const n = this.socketsByPeer.get(peer) ?? 0;
      if (n >= this.config.maxConnectionsPerSource + SOCKETS_PER_SOURCE_EXTRA) {
        this.metrics.refusedSockets.inc({ reason: "source" });
        socket.destroy();
        return;
      }
      this.socketsByPeer.set(peer, n + 1);
    }
    this.sockets++;
    socket.once("close", () => {
      this.sockets--;
      if (peer === null) return;
      const n = this.socketsByPeer.get(peer)! - 1;
      if (n === 0) this.socketsByPeer.delete(peer);
      else this.socketsByPeer.set(peer, n);
    });
  }

  /** Starts listening; resolves with the bound port. Sweeps once at start-up. */
  async listen(): Promise<number> {
    // Storage shared with other relays tells us of their deposits as they happen.
    this.storage.watch?.({
      deposited: (address, seq) => this.depositedElsewhere(address, seq),
      resync: () => this.resync(),
    });
    await this.sweep();
    await this.refreshGauges();
    await new Promise<void>((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(this.config.port, this.config.host, () => {
        this.http.off("error", reject);
        resolve();
      });
    });
    this.sweeper = setInterval(() => void this.sweep(), this.config.sweepIntervalSeconds * 1000);
    this.heartbeat = setInterval(() => this.beat(), this.config.heartbeatSeconds * 1000);
    this.sweeper.unref();
    this.heartbeat.unref();
    const port = (this.http.address() as AddressInfo).port;
    this.log.info(
      {
        port,
        host: this.config.host,
        storage: this.storage.kind,
        ttlSeconds: this.config.ttlSeconds,
        tls: !!this.config.tlsCert,
        maxConnections: this.maxConnections,
      },
      "relay listening",
    );
    return port;
  }

  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  // ---- HTTP -------------------------------------------------------------------------------

  private async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    try {
      switch (path) {
        case "/livez":
          res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
          return;
        case "/readyz": {
          const status = this.draining
            ? "draining"
            : (await (this.storage.ready?.() ?? true))
              ? (this.storage.writeProblem?.() ?? "ready")
              : "storage unavailable";
          res.writeHead(status === "ready" ? 200 : 503, { "content-type": "text/plain" }).end(`${status}\n`);
          return;
        }
        case "/metrics":
          await this.refreshGauges();
          res
            .writeHead(200, { "content-type": this.metrics.registry.contentType })
            .end(await this.metrics.registry.metrics());
          return;
        case "/transparency":
          res
            .writeHead(200, { "content-type": "application/json" })
            .end(`${JSON.stringify(await this.transparency(), null, 2)}\n`);
          return;
        default:
          res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      }
    } catch (e) {
      if (e instanceof StorageUnavailableError) {
        this.storageTrouble(e);
        if (!res.headersSent)
          res.writeHead(503, { "content-type": "text/plain" }).end("storage unavailable\n");
        return;
      }
      this.log.error({ err: e }, "http handler failed");
      if (!res.headersSent) res.writeHead(500).end();
    }
  }

  async transparency(): Promise<object> {
    // Served even while the storage is unavailable (clients read it before using a relay): the
    // stored totals are then null.
    const stats = await this.storage.stats().catch((e: unknown) => {
      if (e instanceof StorageUnavailableError)
        return { messages: null, bytes: null, mailboxes: null, blobs: null, blobBytes: null };
      throw e;
    });
    const counter = async (c: { get(): Promise<{ values: { value: number }[] }> }) =>
      (await c.get()).values.reduce((a, v) => a + v.value, 0);
    const config = { ...this.config, maxConnections: this.maxConnections };
    return transparencyStatement(config, this.storage, {
      connections: this.connections.size,
      storedMessages: stats.messages,
      storedBytes: stats.bytes,
      mailboxes: stats.mailboxes,
      blobs: stats.blobs,
      blobBytes: stats.blobBytes,
      deposits: await counter(this.metrics.deposits),
      deliveries: await counter(this.metrics.deliveries),
      acks: await counter(this.metrics.acks),
      expirations: await counter(this.metrics.expirations),
    });
  }

  /** Reads the storage's totals into the gauges; while it is unavailable, keeps the last ones. */
  private async refreshGauges(): Promise<void> {
    const g = this.metrics.gauges;
    g.connections.set(this.connections.size);
    g.sockets.set(this.sockets);
    g.sources.set(this.sources.size);
    g.maxConnections.set(this.maxConnections);
    g.receiveBuffer.set(this.receiveHeld);
    g.sendBuffer.set(this.sendQueued);
    g.storageLimitBytes.set(this.storage.capacity.maxBytes);
    g.mailboxLimit.set(this.storage.capacity.maxMailboxes);
    g.blobLimitBytes.set(this.maxBlobStorageBytes);
    g.storageWritable.set(this.storage.writeProblem?.() ? 0 : 1);
    try {
      const stats = await this.storage.stats();
      g.storedMessages.set(stats.messages);
      g.storedBytes.set(stats.bytes);
      g.mailboxes.set(stats.mailboxes);
      g.blobs.set(stats.blobs);
      g.blobBytes.set(stats.blobBytes);
      g.blobReservedBytes.set(stats.blobReservedBytes);
      if (stats.countedBytes !== undefined) g.storageBytes.set(stats.countedBytes);
      g.storageUp.set(1);
    } catch (e) {
      if (!(e instanceof StorageUnavailableError)) throw e;
      g.storageUp.set(0);
    }
  }

  /** Logs that requests fail because the storage is unavailable: once per interval, with a count. */
  private storageTrouble(e: StorageUnavailableError): void {
    const t = Date.now();
    if (t - this.storageTroubleLoggedAt < STORAGE_TROUBLE_LOG_MS) {
      this.storageTroubleSuppressed++;
      return;
    }
    this.log.warn(
      { err: e.message, alsoFailedSinceLastLog: this.storageTroubleSuppressed },
      "storage unavailable: requests fail",
    );
    this.storageTroubleLoggedAt = t;
    this.storageTroubleSuppressed = 0;
  }

  // ---- WebSocket ----------------------------------------------------------------------------

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    // The HTTP server's socket timeout no longer applies: the connection's own deadlines do.
    (socket as Socket).setTimeout?.(0);
    const refuse = (status: string, reason: "draining" | "limit" | "source") => {
      this.metrics.rejectedConnections.inc({ reason });
      // Destroy after the response: a peer that never closes its half must not hold the socket.
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () =>
        socket.destroy(),
      );
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    if (this.draining) {
      refuse("503 Service Unavailable", "draining");
      return;
    }
    if (this.connections.size >= this.maxConnections) {
      refuse("503 Service Unavailable", "limit");
      return;
    }
    const source = sourceOf(req.socket.remoteAddress ?? "", req.headers["x-forwarded-for"], this.trust);
    const state = source === null ? undefined : this.sources.get(source);
    if (state && state.connections >= this.config.maxConnectionsPerSource) {
      refuse("429 Too Many Requests", "source");
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket, source));
  }

  private accept(ws: WebSocket, socket: Duplex, source: string | null): void {
    const conn = new Connection(
      ws,
      socket,
      ++this.serial,
      this.config.rateLimit * 2,
      source,
      this.config.proofRate,
      this.config.uploadBytesPerSecond,
    );
    this.connections.add(conn);
    if (source !== null) {
      let state = this.sources.get(source);
      if (!state) {
        const rate = this.config.proofRatePerSource;
        state = { connections: 0, proofs: new Pace(rate, rate * 2) };
        this.sources.set(source, state);
      }
      state.connections++;
    }
    this.metrics.connectionsTotal.inc();
    this.metrics.gauges.connections.set(this.connections.size);
    // Counted before ws reads it: what arrives is weighed first (see inbound.ts).
    socket.prependListener("data", (chunk: Buffer) => this.received(conn, chunk));
    this.armDeadline(conn, this.config.handshakeTimeoutSeconds * 1000);
    ws.on("pong", () => {
      conn.alive = true;
    });
    ws.on("message", (data, isBinary) => this.onMessage(conn, data as Buffer, isBinary));
    ws.on("error", (err) => this.log.debug({ conn: conn.serial, err: err.message }, "connection error"));
    ws.on("close", () => this.forget(conn));
  }

  /**
   * The connection's deadline: a hello within --handshake-timeout; then, while it has no
   * subscription, a frame at least every --idle-timeout. A subscribed connection is kept by its
   * answers to the heartbeat's pings.
   */
  private armDeadline(conn: Connection, ms: number): void {
    clearTimeout(conn.deadline);
    conn.deadline = setTimeout(() => {
      if (conn.cut || conn.ws.readyState !== conn.ws.OPEN) return;
      if (!conn.helloDone) return this.close(conn, 1008, "no hello", "hello-timeout");
      const idleMs = this.config.idleTimeoutSeconds * 1000;
      const quiet = performance.now() - conn.lastFrame;
      if (conn.subscriptions.size === 0 && quiet >= idleMs) return this.close(conn, 1000, "idle", "idle");
      this.armDeadline(conn, conn.subscriptions.size === 0 ? idleMs - quiet : idleMs);
    }, ms);
    conn.deadline.unref();
  }

  /** Closes a connection (a close frame if it can still be sent); dropped if it does not answer soon. */
  private close(conn: Connection, code: number, reason: string, why: CloseReason): void {
    this.metrics.closedConnections.inc({ reason: why });
    this.log.debug({ conn: conn.serial, reason: why }, "closing connection");
    conn.closing = true;
    conn.ws.close(code, reason);
    setTimeout(() => conn.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  /**
   * Cuts a connection off for a limit: its buffers leave the totals at once, nothing more it sends
   * is read, and the socket is destroyed right after the close frame is written.
   */
  private cut(conn: Connection, code: number, reason: string, why: CloseReason): void {
    if (conn.cut) return;
    conn.cut = true;
    this.release(conn);
    this.metrics.closedConnections.inc({ reason: why });
    this.log.debug({ conn: conn.serial, reason: why }, "connection cut off");
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.close(code, reason);
    conn.ws.terminate();
  }

  /** Takes a connection's buffers out of the relay's totals. */
  private release(conn: Connection): void {
    this.receiveHeld -= conn.meter.held;
    conn.meter.held = 0;
    this.receiving.delete(conn);
    this.sendQueued -= conn.queued;
    conn.queued = 0;
    this.sending.delete(conn);
  }

  /**
   * Weighs a chunk before ws reads it: a connection holding more than one largest message of
   * unfinished input is closed with 1009; while all of them together hold more than
   * --max-receive-buffer, the one holding most is closed with 1008.
   */
  private received(conn: Connection, chunk: Buffer): void {
    if (conn.cut) {
      // ws still reads this chunk after us (one emit, its listener after ours): spoil it, so that
      // its first frame header is invalid (reserved bits set) and ws keeps none of it.
      chunk.fill(0xff);
      return;
    }
    // Closing for a reason of its own (a message over maxPayload, the peer's close frame), ws has
    // stopped reading: it keeps nothing more, and the close code it sent must not be cut short.
    if (conn.ws.readyState !== conn.ws.OPEN && !conn.closing) return;
    const before = conn.meter.held;
    const held = conn.meter.feed(chunk);
    this.receiveHeld += held - before;
    if (held > 0) this.receiving.add(conn);
    else this.receiving.delete(conn);
    if (held > receiveCap(this.config)) {
      this.cut(conn, 1009, "message too big", "receive-limit");
      chunk.fill(0xff);
      return;
    }
    while (this.receiveHeld > this.config.maxReceiveBufferBytes && this.receiving.size > 0) {
      let largest: Connection | undefined;
      for (const c of this.receiving) if (!largest || c.meter.held > largest.meter.held) largest = c;
      this.cut(largest!, 1008, "relay receive buffer full", "receive-budget");
      if (largest === conn) chunk.fill(0xff);
    }
  }

  /**
   * Notes what is queued to a connection after a write. Reading from it pauses while more than
   * PAUSE_READING_AT waits (it gets no more answers to queue); beyond --max-outstanding-bytes it is
   * cut off; and while all queues together pass --max-send-buffer, the largest is cut off.
   */
  private queued(conn: Connection): void {
    if (conn.cut || !this.connections.has(conn)) return;
    const q = conn.ws.bufferedAmount;
    this.sendQueued += q - conn.queued;
    conn.queued = q;
    if (q > 0) this.sending.add(conn);
    else this.sending.delete(conn);
    if (q > this.config.maxOutstandingBytes) {
      // A reader this slow would make us buffer without bound: cut it off; its messages stay stored.
      this.cut(conn, 1008, "not reading", "slow-reader");
      return;
    }
    if (q > PAUSE_READING_AT && !conn.readingPaused) {
      conn.readingPaused = true;
      conn.ws.pause();
      conn.socket.once("drain", () => {
        conn.readingPaused = false;
        this.queued(conn);
        if (!conn.cut) conn.ws.resume();
      });
    }
    if (this.sendQueued <= this.config.maxSendBufferBytes) return;
    // The per-connection figures are as last seen: read them again before cutting anyone off.
    this.sendQueued = 0;
    for (const c of this.sending) {
      c.queued = c.ws.bufferedAmount;
      this.sendQueued += c.queued;
      if (c.queued === 0) this.sending.delete(c);
    }
    while (this.sendQueued > this.config.maxSendBufferBytes && this.sending.size > 0) {
      let largest: Connection | undefined;
      for (const c of this.sending) if (!largest || c.queued > largest.queued) largest = c;
      this.cut(largest!, 1008, "relay send buffer full", "send-budget");
    }
  }

  private forget(conn: Connection): void {
    if (!this.connections.delete(conn)) return;
    clearTimeout(conn.deadline);
    this.release(conn);
    for (const key of conn.subscriptions) this.unsubscribe(conn, key);
    if (conn.source !== null) {
      const source = conn.source;
      const state = this.sources.get(source)!;
      state.connections--;
      // Kept while proofs are booked ahead, so that reconnecting does not reset the pace.
      const forgetSource = () => {
        if (this.sources.get(source) !== state || state.connections > 0) return;
        const now = performance.now();
        if (state.proofs.idle(now)) this.sources.delete(source);
        else setTimeout(forgetSource, state.proofs.idleAt - now + 1).unref();
      };
      forgetSource();
    }
    this.metrics.gauges.connections.set(this.connections.size);
  }

  /** Forgets one in-flight delivery on one connection (acked, expired, deleted or unsubscribed). */
  private drop(conn: Connection, idKey: string): void {
    const entry = conn.inflight.get(idKey);
    if (!entry) return;
    conn.inflight.delete(idKey);
    conn.inflightBytes -= entry.size;
    const holders = this.inflight.get(idKey);
    holders?.delete(conn);
    if (holders?.size === 0) this.inflight.delete(idKey);
  }

  /** Ends a subscription; its unacknowledged deliveries are forgotten, so a new one sends them again. */
  private unsubscribe(conn: Connection, key: string): void {
    conn.subscriptions.delete(key);
    conn.cursors.delete(key);
    conn.backlog.delete(key);
    for (const [idKey, entry] of conn.inflight) if (entry.key === key) this.drop(conn, idKey);
    const set = this.subscribers.get(key);
    set?.delete(conn);
    if (set && set.size === 0) this.subscribers.delete(key);
  }

  private send(conn: Connection, frame: Frame): void {
    if (conn.cut || conn.ws.readyState !== conn.ws.OPEN) return;
    conn.ws.send(encodeFrame(frame));
    this.queued(conn);
  }

  private error(conn: Connection, requestId: number, code: RelayErrorName, message: string): void {
    this.metrics.errors.inc({ code });
    this.send(conn, { type: "error", requestId, code, message });
  }

  /** Counts a protocol violation; too many close the connection (1008 policy violation). */
  private violation(conn: Connection, requestId: number, code: RelayErrorName, message: string): void {
    this.error(conn, requestId, code, message);
    if (++conn.violations === MAX_VIOLATIONS)
      this.close(conn, 1008, "too many malformed frames", "violations");
  }

  private takeToken(conn: Connection): boolean {
    const t = performance.now();
    conn.tokens = Math.min(conn.burst, conn.tokens + ((t - conn.lastRefill) / 1000) * this.config.rateLimit);
    conn.lastRefill = t;
    if (conn.tokens < 1) return false;
    conn.tokens -= 1;
    return true;
  }

  private onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    if (conn.cut) return;
    const arrived = performance.now();
    conn.lastFrame = arrived;
    const requestId = data.length >= 6 ? data.readUInt32BE(2) : 0;
    if (this.draining) {
      this.error(conn, requestId, "SHUTTING_DOWN", "the relay is shutting down; reconnect later");
      return;
    }
    // An ack of a delivery in flight on this connection, under the mailbox it was delivered from,
    // is not rate-limited, once: the relay chose to send that message, and an owner draining a
    // backlog must be able to acknowledge it all. A repeat, or an ack naming another mailbox, pays.
    const acked =
      data.length === ACK_ID_OFFSET + 16 && data[1] === ACK_TYPE
        ? conn.inflight.get(data.toString("hex", ACK_ID_OFFSET, ACK_ID_OFFSET + 16))
        : undefined;
    const exempt =
      acked !== undefined &&
      !acked.ackExempted &&
      acked.key === data.toString("hex", ACK_ADDRESS_OFFSET, ACK_ID_OFFSET);
    if (exempt) acked.ackExempted = true;
    // File chunks are paced in bytes, not frames (blobs.ts): a refused one takes its token there.
    const chunk =
      data.length >= 2 &&
      data[0] === FRAME_VERSION &&
      (data[1] === PUT_CHUNK_TYPE || data[1] === GET_CHUNK_TYPE);
    if (!exempt && !chunk && !this.takeToken(conn)) {
      // Throttled, not a violation: the frame is refused and the client may retry later.
      this.error(conn, requestId, "RATE_LIMITED", "too many frames; slow down");
      return;
    }
    if (!isBinary) {
      this.violation(conn, requestId, "BAD_FRAME", "frames are binary");
      return;
    }
    let frame: Frame;
    try {
      frame = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.length), {
        maxCiphertext: this.config.maxMessageBytes,
      });
    } catch (e) {
      if (e instanceof DecodeError) {
        this.violation(conn, requestId, e.code, e.message);
        return;
      }
      throw e;
    }
    if (!isClientFrame(frame)) {
      this.violation(conn, requestId, "BAD_FRAME", `${frame.type} is a relay frame`);
      return;
    }
    if (!conn.helloDone && frame.type !== "hello") {
      this.violation(conn, frame.requestId, "NO_HELLO", "send hello first");
      return;
    }
    const work = this.dispatch(conn, frame, arrived).catch((e: unknown) => {
      if (e instanceof StorageUnavailableError) {
        this.storageTrouble(e);
        this.error(conn, frame.requestId, "INTERNAL", "the relay's storage is unavailable; retry later");
        return;
      }
      this.log.error({ conn: conn.serial, err: e }, "request failed");
      this.error(conn, frame.requestId, "INTERNAL", "the relay could not complete this request");
    });
    this.inFlightWork.add(work);
    void work.finally(() => this.inFlightWork.delete(work));
  }

  private async dispatch(conn: Connection, f: Frame, arrived: number): Promise<void> {
    const ok = () => this.send(conn, { type: "ok", requestId: f.requestId });
    switch (f.type) {
      case "hello":
        if (!conn.helloDone) this.armDeadline(conn, this.config.idleTimeoutSeconds * 1000);
        conn.helloDone = true;
        return this.send(conn, {
          type: "welcome",
          requestId: f.requestId,
          version: FRAME_VERSION,
          challenge: conn.challenge,
          maxCiphertext: this.config.maxMessageBytes,
          retentionSeconds: this.config.ttlSeconds,
        });
      case "createMailbox": {
        const address = mailboxAddress(f.ownerKey);
        const proof = await this.checkProof(conn, f.ownerKey, MailboxAction.create, address, f.signature);
        if (proof !== "valid") return this.refuseProof(conn, f.requestId, proof);
        const result = await this.storage.createMailbox(address, f.ownerKey);
        if (result === "conflict") return this.error(conn, f.requestId, "MAILBOX_EXISTS", "mailbox exists");
        if (result === "full") {
          return this.error(
            conn,
            f.requestId,
            "QUOTA",
            "the relay takes no new mailboxes for now; try again later",
          );
        }
        return ok();
      }
      case "deposit":
      case "tokenDeposit":
        return this.deposit(conn, f, arrived);
      case "setDepositToken": {
        if (!(await this.ownerProves(conn, f, MailboxAction.setDepositToken, f.tokenHash))) return;
        if (!(await this.storage.setDepositToken(f.address, f.tokenHash)))
          return this.error(conn, f.requestId, "UNKNOWN_MAILBOX", "no such mailbox");
        return ok();
      }
      case "subscribe": {
        if (!(await this.ownerProves(conn, f, MailboxAction.subscribe))) return;
        if (conn.cut || conn.ws.readyState !== conn.ws.OPEN) return;
        const key = toHex(f.address);
        conn.subscriptions.add(key);
        let set = this.subscribers.get(key);
        if (!set) {
          set = new Set();
          this.subscribers.set(key, set);
        }
        set.add(conn);
        ok();
        // In the background: the request is answered, and a delivery round that fails now must not
        // answer it a second time (the messages stay stored; a later round delivers them).
        this.track(this.pump(conn, key, f.address));
        return;
      }
      case "unsubscribe":
        this.unsubscribe(conn, toHex(f.address));
        return ok();
      case "ack": {
        const key = toHex(f.address);
        if (!conn.subscriptions.has(key)) {
          return this.error(conn, f.requestId, "AUTH", "subscribe with an ownership proof before acking");
        }
        const found = await this.storage.ack(f.address, f.messageId);
        // Acked now, or already gone (acked elsewhere, expired): either way it is no longer in flight.
        this.settle(toHex(f.messageId), key);
        if (!found) {
          this.error(conn, f.requestId, "UNKNOWN_MESSAGE", "no such message (acked or expired)");
          return;
        }
        this.metrics.acks.inc();
        ok();
        return;
      }
      case "createBlob":
      case "putChunk":
      case "blobStatus":
      case "getChunk":
      case "blobDone":
      case "deleteBlob":
        return this.blobs.handle(conn, f);
      case "deleteMailbox": {
        if (!(await this.ownerProves(conn, f, MailboxAction.delete))) return;
        await this.storage.deleteMailbox(f.address);
        const key = toHex(f.address);
        for (const c of this.subscribers.get(key) ?? []) this.unsubscribe(c, key);
        return ok();
      }
      default:
        return this.violation(conn, f.requestId, "BAD_FRAME", "unexpected frame");
    }
  }

  /**
   * Checks an ownership proof (PROTOCOL.md §8.3) at the pace of --proof-rate for the connection and
   * --proof-rate-per-source for its source: a proof waits for its turn, up to MAX_PROOF_WAIT_MS,
   * or is "throttled". OpenSSL decides (ed25519.ts); its "unsure" is settled by noble while the
   * relay's second-opinion budget lasts, and is "throttled" beyond it.
   */
  private async checkProof(
    conn: Connection,
    ownerKey: Uint8Array,
    action: MailboxAction,
    address: Uint8Array,
    signature: Uint8Array,
    tokenHash?: Uint8Array,
  ): Promise<"valid" | "invalid" | "throttled"> {
    const now = performance.now();
    const source = conn.source === null ? undefined : this.sources.get(conn.source);
    const wait = Math.max(conn.proofs.wait(now), source?.proofs.wait(now) ?? 0);
    if (wait > MAX_PROOF_WAIT_MS) {
      this.metrics.proofs.inc({ result: "throttled" });
      return "throttled";
    }
    conn.proofs.book(now + wait);
    source?.proofs.book(now + wait);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const message = mailboxProofMessage(action, conn.challenge, address, tokenHash);
    let verdict = verifyEd25519(ownerKey, message, signature);
    if (verdict === "unsure") {
      const t = performance.now();
      if (this.secondOpinions.wait(t) > 0) {
        this.metrics.proofs.inc({ result: "throttled" });
        return "throttled";
      }
      this.secondOpinions.book(t);
      this.metrics.proofSecondOpinions.inc();
      verdict = verifyMailboxProof(ownerKey, action, conn.challenge, address, signature, tokenHash)
        ? "valid"
        : "invalid";
    }
    this.metrics.proofs.inc({ result: verdict });
    return verdict;
  }

  /**
   * Whether the frame's proof is the stored owner's, for `action`; if not, the frame is answered
   * (UNKNOWN_MAILBOX, AUTH or RATE_LIMITED) and false returned.
   */
  private async ownerProves(
    conn: Connection,
    f: { requestId: number; address: Uint8Array; signature: Uint8Array },
    action: MailboxAction,
    tokenHash?: Uint8Array,
  ): Promise<boolean> {
    const owner = await this.storage.mailboxOwner(f.address);
    if (!owner) {
      this.error(conn, f.requestId, "UNKNOWN_MAILBOX", "no such mailbox");
      return false;
    }
    const proof = await this.checkProof(conn, owner, action, f.address, f.signature, tokenHash);
    if (proof === "valid") return true;
    this.refuseProof(conn, f.requestId, proof);
    return false;
  }

  private refuseProof(conn: Connection, requestId: number, proof: "invalid" | "throttled"): void {
    if (proof === "throttled")
      this.error(conn, requestId, "RATE_LIMITED", "too many ownership proofs; slow down");
    else this.error(conn, requestId, "AUTH", "ownership proof does not verify for this connection");
  }

  private async deposit(
    conn: Connection,
    f: Extract<Frame, { type: "deposit" | "tokenDeposit" }>,
    arrived: number,
  ): Promise<void> {
    const receivedAt = this.now();
    const key = toHex(f.address);
    let result: Awaited<ReturnType<Storage["deposit"]>>;
    try {
      result = await this.storage.deposit(
        {
          address: f.address,
          clientMessageId: f.clientMessageId,
          ciphertext: f.ciphertext,
          receivedAt,
          expiresAt: receivedAt + this.config.ttlSeconds * 1000,
          id: randomBytes(16),
          tokenHash: f.type === "tokenDeposit" ? depositTokenHash(f.token) : null,
        },
        { maxMessages: this.config.mailboxMaxMessages, maxBytes: this.config.mailboxMaxBytes },
      );
    } catch (e) {
      // It may have been stored all the same (a reply lost or too late): this relay hears no
      // notification of its own deposits, so its subscribers read the mailbox.
      this.pumpSubscribers(key, f.address);
      throw e;
    }
    switch (result.status) {
      case "unknown-mailbox":
        return this.error(conn, f.requestId, "UNKNOWN_MAILBOX", "no such mailbox");
      case "quota":
        return this.error(conn, f.requestId, "QUOTA", "the mailbox is full; try again later");
      case "token":
        return this.error(
          conn,
          f.requestId,
          "AUTH",
          f.type === "deposit"
            ? "this mailbox takes deposits only with its deposit token"
            : "this is not the mailbox's deposit token",
        );
      case "full":
        return this.error(conn, f.requestId, "QUOTA", "the relay's storage is full; try again later");
      case "id-reused":
        return this.error(
          conn,
          f.requestId,
          "BAD_FRAME",
          "this client message id was already used in this mailbox for another ciphertext; use a fresh random id",
        );
      case "duplicate":
        this.metrics.duplicateDeposits.inc();
        this.send(conn, { type: "ok", requestId: f.requestId });
        // A retry of a deposit whose first attempt failed here but was stored: push it now.
        this.pumpSubscribers(key, f.address);
        return;
      case "stored": {
        this.metrics.deposits.inc();
        this.send(conn, { type: "ok", requestId: f.requestId });
        this.metrics.depositLatency.observe((performance.now() - arrived) / 1000);
        for (const sub of this.subscribers.get(key) ?? []) this.push(sub, key, result.message);
      }
    }
  }

  /** Sends one message to a subscriber unless it is already in flight there or its window is full. */
  private push(conn: Connection, key: string, m: StoredMessage): boolean {
    const idKey = toHex(m.id);
    if (conn.inflight.has(idKey)) return true;
    if (conn.inflightBytes >= this.config.maxOutstandingBytes / 2) {
      conn.backlog.add(key);
      return false;
    }
    conn.inflight.set(idKey, { key, size: m.ciphertext.length, expiresAt: m.expiresAt, ackExempted: false });
    conn.inflightBytes += m.ciphertext.length;
    let holders = this.inflight.get(idKey);
    if (!holders) {
      holders = new Set();
      this.inflight.set(idKey, holders);
    }
    holders.add(conn);
    this.metrics.deliveries.inc();
    this.metrics.deliveryLatency.observe(Math.max(0, this.now() - m.receivedAt) / 1000);
    this.send(conn, {
      type: "deliver",
      requestId: 0,
      address: m.address,
      messageId: m.id,
      receivedAt: m.receivedAt,
      ciphertext: m.ciphertext,
    });
    return true;
  }

  /**
   * An ack settles an in-flight delivery of mailbox `key` on every connection that had it, and
   * resumes the deliveries that waited behind each of those windows.
   */
  private settle(idKey: string, key: string): void {
    for (const c of [...(this.inflight.get(idKey) ?? [])]) {
      if (c.inflight.get(idKey)?.key !== key) continue;
      this.drop(c, idKey);
      this.resume(c);
    }
  }

  /**
   * The window is shared by all of a connection's subscriptions: once it has room again, every
   * mailbox that was left with a backlog gets a delivery round.
   */
  private resume(conn: Connection): void {
    if (conn.inflightBytes >= this.config.maxOutstandingBytes / 2) return;
    for (const key of [...conn.backlog]) {
      conn.backlog.delete(key);
      this.track(this.pump(conn, key, fromHex(key)));
    }
  }

  /**
   * A message was stored through another relay: each of our subscribers to its mailbox that has not
   * examined it yet gets a delivery round.
   */
  private depositedElsewhere(address: Uint8Array, seq: number): void {
    if (this.draining) return;
    const key = toHex(address);
    for (const conn of this.subscribers.get(key) ?? []) {
      if ((conn.cursors.get(key) ?? 0) >= seq) continue;
      this.track(this.pump(conn, key, address));
    }
  }

  /** Every subscriber of mailbox `key` on this relay gets a delivery round. */
  private pumpSubscribers(key: string, address: Uint8Array): void {
    if (this.draining) return;
    for (const conn of this.subscribers.get(key) ?? []) this.track(this.pump(conn, key, address));
  }

  /**
   * Notifications may have been missed, or the storage's arrival counter went back (Redis lost its
   * last writes, or was restored from an older copy), so that new messages may have a seq at or
   * below a cursor: every cursor is forgotten and every subscription gets a delivery round from the
   * start of its mailbox. Messages in flight are not sent again (the round skips them).
   */
  private resync(): void {
    if (this.draining) return;
    for (const conn of this.connections) {
      conn.cursors.clear();
      conn.cursorEpoch++;
    }
    for (const [key, conns] of this.subscribers) {
      const address = fromHex(key);
      for (const conn of conns) this.track(this.pump(conn, key, address));
    }
  }

  /** Runs background work so that a failure is logged, never an unhandled rejection, and drain waits for it. */
  private track(work: Promise<unknown>): void {
    const guarded = work.catch((e: unknown) => {
      // Whatever waits stays stored: the resync after the storage comes back delivers it.
      if (e instanceof StorageUnavailableError) this.storageTrouble(e);
      else this.log.error({ err: e }, "background delivery failed");
    });
    this.inFlightWork.add(guarded);
    void guarded.finally(() => this.inFlightWork.delete(guarded));
  }

  /** Expired messages are gone from storage: forget their deliveries and resume blocked windows. */
  private settleExpired(now: number): void {
    for (const conn of this.connections) {
      let freed = false;
      for (const [idKey, entry] of conn.inflight) {
        if (entry.expiresAt > now) continue;
        this.drop(conn, idKey);
        freed = true;
      }
      if (freed) this.resume(conn);
    }
  }

  /** Delivers what waits in a mailbox, in rounds, until it is empty or the window is full. */
  private async pump(conn: Connection, key: string, address: Uint8Array): Promise<void> {
    if (conn.pumping.has(key)) {
      conn.pumpAgain.add(key);
      return;
    }
    conn.pumping.add(key);
    try {
      for (;;) {
        conn.pumpAgain.delete(key);
        if (!conn.subscriptions.has(key) || conn.ws.readyState !== conn.ws.OPEN) return;
        // Fetch no more than the window can take: a round never reads what it cannot send.
        const free = this.config.maxOutstandingBytes / 2 - conn.inflightBytes;
        if (free <= 0) {
          conn.backlog.add(key); // an ack resumes
          return;
        }
        const limit = Math.min(DELIVERY_BATCH, 1 + Math.floor(free / this.config.maxMessageBytes));
        const epoch = conn.cursorEpoch;
        const batch = await this.storage.pending(address, this.now(), limit, conn.cursors.get(key) ?? 0);
        // Cursors cleared meanwhile (a resync): this batch still goes out, but the next round starts
        // from the beginning of the mailbox (the resync asked for one).
        const advance = epoch === conn.cursorEpoch;
        for (const m of batch) {
          if (!conn.inflight.has(toHex(m.id)) && !this.push(conn, key, m)) return; // window full
          if (advance) conn.cursors.set(key, m.seq);
        }
        if (batch.length < limit && !conn.pumpAgain.has(key)) return;
      }
    } finally {
      conn.pumping.delete(key);
    }
  }

  private beat(): void {
    for (const conn of this.connections) {
      if (!conn.alive) {
        this.metrics.closedConnections.inc({ reason: "heartbeat" });
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
    }
  }

  /** Deletes expired messages; runs every sweep interval and at start-up. */
  async sweep(): Promise<number> {
    try {
      const now = this.now();
      const n = await this.storage.sweep(now);
      this.settleExpired(now);
      const blobs = await this.blobs.sweep();
      if (blobs > 0) this.log.info({ expired: blobs }, "expired files deleted");
      if (n > 0) {
        this.metrics.expirations.inc(n);
        this.log.info({ expired: n }, "expired messages deleted");
      }
      return n;
    } catch (e) {
      if (e instanceof StorageUnavailableError) this.storageTrouble(e);
      else this.log.error({ err: e }, "sweep failed");
      return 0;
    }
  }

  /**
   * Graceful shutdown: /readyz turns 503, new connections are refused, in-flight requests finish
   * (their commits included), connections close with 1001, storage closes.
   */
  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.log.info({ connections: this.connections.size }, "draining");
    clearInterval(this.sweeper);
    clearInterval(this.heartbeat);
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    // Work can start more work (an ack resumes deliveries): wait until none is left.
    while (this.inFlightWork.size > 0) await Promise.allSettled([...this.inFlightWork]);
    for (const conn of this.connections) conn.ws.close(1001, "relay shutting down");
    await new Promise((r) => setTimeout(r, 50));
    for (const conn of this.connections) conn.ws.terminate();
    this.http.closeAllConnections();
    await closed;
    await this.storage.close();
    this.log.info("stopped");
  }
}
