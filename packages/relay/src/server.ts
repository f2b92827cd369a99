// The relay: HTTP (health, metrics, transparency) and the WebSocket wire protocol on one port.
//
// RelayServer puts the parts together and owns their lifecycle (listen, the sweep, drain):
//   http.ts         the HTTP server: TCP admission, deadlines, /livez /readyz /metrics /transparency
//   connections.ts  WebSocket connections: upgrade limits, deadlines, heartbeat, buffers both ways,
//                   and every frame sent
//   frames.ts       every frame received: pacing, decoding, dispatch
//   delivery.ts     the hot path: deposit → deliver → ack, subscriptions, delivery rounds
//   proofs.ts       ownership proofs at their pace
//   blobs.ts        file transfer
//   context.ts      what they share: config, storage, metrics, log, draining, work under way
import type { AddressInfo } from "node:net";
import { BlobService } from "./blobs.js";
import { blobStorageCap, type RelayConfig } from "./config.js";
import type { Connection } from "./connection.js";
import { Connections } from "./connections.js";
import { RelayContext } from "./context.js";
import { Delivery } from "./delivery.js";
import { Frames } from "./frames.js";
import { connectionLimit, HttpFront } from "./http.js";
import type { Logger } from "./log.js";
import { RelayMetrics } from "./metrics.js";
import { Proofs } from "./proofs.js";
import { trustList } from "./sources.js";
import { type Storage, StorageUnavailableError } from "./storage/types.js";
import { transparencyStatement } from "./transparency.js";

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
  /** WebSocket connections at most: --max-connections, or fewer if file descriptors are short. */
  readonly maxConnections: number;
  /** --max-blob-storage as resolved: by default half of the storage cap. */
  readonly maxBlobStorageBytes: number;
  private readonly ctx: RelayContext;
  private readonly http: HttpFront;
  private readonly connections: Connections;
  private readonly delivery: Delivery;
  private readonly blobs: BlobService<Connection>;
  private readonly frames: Frames;
  private sweeper: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(options: RelayServerOptions) {
    const { config, storage } = options;
    const ctx = new RelayContext({
      config,
      storage,
      metrics: this.metrics,
      log: options.logger,
      now: options.now ?? Date.now,
    });
    this.ctx = ctx;
    const trust = trustList(config.trustProxy);
    this.maxBlobStorageBytes = blobStorageCap(config, storage.capacity.maxBytes);
    this.maxConnections = connectionLimit(config, ctx.log);
    const connections = new Connections(ctx, {
      trust,
      maxConnections: this.maxConnections,
      events: {
        message: (conn, data, isBinary) => this.frames.handle(conn, data, isBinary),
        closed: (conn) => this.delivery.closed(conn),
      },
    });
    this.connections = connections;
    this.delivery = new Delivery(ctx, connections);
    this.blobs = new BlobService<Connection>({
      storage,
      metrics: this.metrics,
      maxBlobBytes: config.maxBlobBytes,
      maxBlobStorageBytes: this.maxBlobStorageBytes,
      retentionSeconds: config.ttlSeconds,
      now: ctx.now,
      send: (conn, frame) => connections.send(conn, frame),
      error: (conn, requestId, code, message) => connections.error(conn, requestId, code, message),
      takeFrameToken: (conn) => conn.takeToken(),
    });
    this.frames = new Frames(ctx, {
      connections,
      delivery: this.delivery,
      proofs: new Proofs(ctx, connections),
      blobs: this.blobs,
    });
    this.http = new HttpFront(ctx, {
      trust,
      maxConnections: this.maxConnections,
      upgrade: (req, socket, head) => connections.upgrade(req, socket, head),
      refreshGauges: () => this.refreshGauges(),
      transparency: () => this.transparency(),
    });
  }

  /** Starts listening; resolves with the bound port. Sweeps once at start-up. */
  async listen(): Promise<number> {
    const { config, storage } = this.ctx;
    // Storage shared with other relays tells us of their deposits as they happen.
    storage.watch?.({
      deposited: (address, seq) => this.delivery.depositedElsewhere(address, seq),
      resync: () => this.delivery.resync(),
    });
    await this.sweep();
    await this.refreshGauges();
    const http = this.http.server;
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen(config.port, config.host, () => {
        http.off("error", reject);
        resolve();
      });
    });
    this.sweeper = setInterval(() => void this.sweep(), config.sweepIntervalSeconds * 1000);
    this.heartbeat = setInterval(() => this.connections.beat(), config.heartbeatSeconds * 1000);
    this.sweeper.unref();
    this.heartbeat.unref();
    const port = this.port;
    this.ctx.log.info(
      {
        port,
        host: config.host,
        storage: storage.kind,
        ttlSeconds: config.ttlSeconds,
        tls: !!config.tlsCert,
        maxConnections: this.maxConnections,
      },
      "relay listening",
    );
    return port;
  }

  get port(): number {
    return (this.http.server.address() as AddressInfo).port;
  }

  async transparency(): Promise<object> {
    // Served even while the storage is unavailable (clients read it before using a relay): the
    // stored totals are then null.
    const stats = await this.ctx.storage.stats().catch((e: unknown) => {
      if (e instanceof StorageUnavailableError)
        return { messages: null, bytes: null, mailboxes: null, blobs: null, blobBytes: null };
      throw e;
    });
    const counter = async (c: { get(): Promise<{ values: { value: number }[] }> }) =>
      (await c.get()).values.reduce((a, v) => a + v.value, 0);
    const config = { ...this.ctx.config, maxConnections: this.maxConnections };
    return transparencyStatement(config, this.ctx.storage, {
      connections: this.connections.all.size,
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
    const { storage } = this.ctx;
    const g = this.metrics.gauges;
    g.connections.set(this.connections.all.size);
    g.sockets.set(this.http.sockets);
    g.sources.set(this.connections.sourceCount);
    g.maxConnections.set(this.maxConnections);
    g.receiveBuffer.set(this.connections.receiveBuffered);
    g.sendBuffer.set(this.connections.sendBuffered);
    g.storageLimitBytes.set(storage.capacity.maxBytes);
    g.mailboxLimit.set(storage.capacity.maxMailboxes);
    g.blobLimitBytes.set(this.maxBlobStorageBytes);
    g.storageWritable.set(storage.writeProblem?.() ? 0 : 1);
    try {
      const stats = await storage.stats();
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

  /** Deletes expired messages; runs every sweep interval and at start-up. */
  async sweep(): Promise<number> {
    const { storage, log } = this.ctx;
    try {
      const now = this.ctx.now();
      const n = await storage.sweep(now);
      this.delivery.settleExpired(now);
      const blobs = await this.blobs.sweep();
      if (blobs > 0) log.info({ expired: blobs }, "expired files deleted");
      if (n > 0) {
        this.metrics.expirations.inc(n);
        log.info({ expired: n }, "expired messages deleted");
      }
      return n;
    } catch (e) {
      if (e instanceof StorageUnavailableError) this.ctx.storageTrouble(e);
      else log.error({ err: e }, "sweep failed");
      return 0;
    }
  }

  /**
   * Graceful shutdown: /readyz turns 503, new connections are refused, in-flight requests finish
   * (their commits included), connections close with 1001, storage closes.
   */
  async drain(): Promise<void> {
    if (this.ctx.draining) return;
    this.ctx.draining = true;
    const connections = this.connections.all;
    this.ctx.log.info({ connections: connections.size }, "draining");
    clearInterval(this.sweeper);
    clearInterval(this.heartbeat);
    const http = this.http.server;
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    await this.ctx.settled();
    for (const conn of connections) conn.ws.close(1001, "relay shutting down");
    await new Promise((r) => setTimeout(r, 50));
    for (const conn of connections) conn.ws.terminate();
    http.closeAllConnections();
    await closed;
    await this.ctx.storage.close();
    this.ctx.log.info("stopped");
  }
}
