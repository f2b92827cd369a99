// The relay's HTTP side, on the one port it listens on: every TCP connection admitted or destroyed
// on arrival (--max-connections plus --http-reserve, one peer's share), deadlines for every state of
// an HTTP socket, the endpoints (/livez, /readyz, /metrics, /transparency), and the WebSocket
// upgrades handed to connections.ts.
import { readFileSync } from "node:fs";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { BlockList, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { RelayConfig } from "./config.js";
import type { RelayContext } from "./context.js";
import type { Logger } from "./log.js";
import { sourceKey, trusted } from "./sources.js";
import { StorageUnavailableError } from "./storage/types.js";

/** HTTP: a socket with no traffic either way for this long is destroyed (a client that never reads). */
const HTTP_SOCKET_IDLE_MS = 30_000;
/** HTTP: an idle keep-alive socket is closed after this. */
const KEEP_ALIVE_MS = 5_000;
/** TCP connections one source may hold beyond its WebSocket limit (HTTP requests, upgrades on the way). */
const SOCKETS_PER_SOURCE_EXTRA = 16;
/** File descriptors left for everything that is not a client socket (storage files, Redis, stdio). */
const FD_MARGIN = 64;

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

/**
 * WebSocket connections at most: --max-connections, or fewer (with a warning) when the file
 * descriptors cannot hold that many beside --http-reserve and the relay's own files.
 */
export function connectionLimit(
  config: Pick<RelayConfig, "maxConnections" | "httpReserve">,
  log: Logger,
): number {
  const files = openFileLimit();
  if (files === null || files - config.httpReserve - FD_MARGIN >= config.maxConnections) {
    return config.maxConnections;
  }
  const fit = files - config.httpReserve - FD_MARGIN;
  if (fit < 1) {
    throw new Error(
      `only ${files} file descriptors (ulimit -n): not enough for --http-reserve ${config.httpReserve} and the relay's own files`,
    );
  }
  log.warn(
    { fileLimit: files, maxConnections: fit, configured: config.maxConnections },
    "too few file descriptors for --max-connections: lowered (raise ulimit -n, or LimitNOFILE in systemd)",
  );
  return fit;
}

export interface HttpFrontOptions {
  /** Proxies whose connections count only in the total, not per peer (--trust-proxy). */
  readonly trust: BlockList;
  /** WebSocket connections at most, as resolved (`connectionLimit`). */
  readonly maxConnections: number;
  /** A WebSocket upgrade request (connections.ts). */
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Brings the gauges up to date, before /metrics is answered. */
  readonly refreshGauges: () => Promise<void>;
  /** The transparency statement. */
  readonly transparency: () => Promise<object>;
}

export class HttpFront {
  readonly server: Server;
  /** Open TCP connections (HTTP and WebSocket), in all, and per peer address (untrusted peers only). */
  private openSockets = 0;
  private readonly socketsByPeer = new Map<string, number>();

  constructor(
    private readonly ctx: RelayContext,
    private readonly o: HttpFrontOptions,
  ) {
    const { config } = ctx;
    const handshakeMs = config.handshakeTimeoutSeconds * 1000;
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    // Deadlines for every state of an HTTP socket: the TLS handshake, the request headers (checked
    // every second), an idle keep-alive, and no traffic either way (a client that never reads).
    const httpOptions = {
      headersTimeout: handshakeMs,
      requestTimeout: handshakeMs,
      keepAliveTimeout: KEEP_ALIVE_MS,
      connectionsCheckingInterval: Math.min(1000, handshakeMs),
      maxHeaderSize: 16 * 1024,
    };
    this.server =
      config.tlsCert && config.tlsKey
        ? createHttpsServer(
            {
              ...httpOptions,
              cert: readFileSync(config.tlsCert),
              key: readFileSync(config.tlsKey),
              handshakeTimeout: handshakeMs,
            },
            handler,
          )
        : createHttpServer(httpOptions, handler);
    this.server.timeout = HTTP_SOCKET_IDLE_MS;
    this.server.maxHeadersCount = 50;
    this.server.on("connection", (socket: Socket) => this.admit(socket));
    this.server.on("upgrade", (req, socket, head) => this.o.upgrade(req, socket, head));
    // A request that does not parse (or times out) is answered and the socket destroyed, not merely
    // ended: a peer that never closes its side must not keep it.
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
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

  /** Open TCP connections, HTTP and WebSocket (for the gauges). */
  get sockets(): number {
    return this.openSockets;
  }

  /**
   * Every TCP connection: within the total (WebSocket slots plus the HTTP reserve) and within its
   * peer's share, or destroyed at once. A trusted proxy's connections count only in the total.
   */
  private admit(socket: Socket): void {
    const { config, metrics } = this.ctx;
    const address = socket.remoteAddress ?? "";
    const peer = trusted(this.o.trust, address) ? null : sourceKey(address);
    if (this.openSockets >= this.o.maxConnections + config.httpReserve) {
      metrics.refusedSockets.inc({ reason: "limit" });
      socket.destroy();
      return;
    }
    if (peer !== null) {
      const n = this.socketsByPeer.get(peer) ?? 0;
      if (n >= config.maxConnectionsPerSource + SOCKETS_PER_SOURCE_EXTRA) {
        metrics.refusedSockets.inc({ reason: "source" });
        socket.destroy();
        return;
      }
      this.socketsByPeer.set(peer, n + 1);
    }
    this.openSockets++;
    socket.once("close", () => {
      this.openSockets--;
      if (peer === null) return;
      const n = this.socketsByPeer.get(peer)! - 1;
      if (n === 0) this.socketsByPeer.delete(peer);
      else this.socketsByPeer.set(peer, n);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { storage } = this.ctx;
    const { registry } = this.ctx.metrics;
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
          const status = this.ctx.draining
            ? "draining"
            : (await (storage.ready?.() ?? true))
              ? (storage.writeProblem?.() ?? "ready")
              : "storage unavailable";
          res.writeHead(status === "ready" ? 200 : 503, { "content-type": "text/plain" }).end(`${status}\n`);
          return;
        }
        case "/metrics":
          await this.o.refreshGauges();
          res.writeHead(200, { "content-type": registry.contentType }).end(await registry.metrics());
          return;
        case "/transparency":
          res
            .writeHead(200, { "content-type": "application/json" })
            .end(`${JSON.stringify(await this.o.transparency(), null, 2)}\n`);
          return;
        default:
          res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      }
    } catch (e) {
      if (e instanceof StorageUnavailableError) {
        this.ctx.storageTrouble(e);
        if (!res.headersSent)
          res.writeHead(503, { "content-type": "text/plain" }).end("storage unavailable\n");
        return;
      }
      this.ctx.log.error({ err: e }, "http handler failed");
      if (!res.headersSent) res.writeHead(500).end();
    }
  }
}
