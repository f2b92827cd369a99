// The relay's WebSocket connections: admitted at the upgrade (--max-connections, per source), kept
// by deadlines and the heartbeat, and held to the relay's buffers both ways: what a connection sends
// is weighed before ws reads it (--max-receive-buffer), what is queued to it is watched after every
// write (--max-outstanding-bytes, --max-send-buffer). Every frame the relay sends goes out here.
import type { IncomingMessage } from "node:http";
import type { BlockList, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { encodeFrame, type Frame, type RelayErrorName } from "@parley/protocol";
import { type WebSocket, WebSocketServer } from "ws";
import { maxPayload, receiveCap } from "./config.js";
import { Connection, type SourceState } from "./connection.js";
import type { RelayContext } from "./context.js";
import type { CloseReason } from "./metrics.js";
import { Pace, sourceOf } from "./sources.js";

/** Bad frames a connection may send before it is closed (policy violation). */
const MAX_VIOLATIONS = 10;
/** A closed connection whose peer does not complete the closing handshake is dropped after this. */
const CLOSE_GRACE_MS = 2_000;
/** Reading from a connection pauses while this much is queued to it, until its socket drains. */
const PAUSE_READING_AT = 64 * 1024;

/** What the rest of the relay hears of a connection. */
export interface ConnectionEvents {
  /** A WebSocket message arrived: a frame to read (frames.ts). */
  message(conn: Connection, data: Buffer, isBinary: boolean): void;
  /** The connection is gone: its subscriptions end (delivery.ts). */
  closed(conn: Connection): void;
}

export interface ConnectionsOptions {
  /** Proxies whose X-Forwarded-For names the source (--trust-proxy). */
  readonly trust: BlockList;
  /** WebSocket connections at most (--max-connections, or fewer if file descriptors are short). */
  readonly maxConnections: number;
  readonly events: ConnectionEvents;
}

export class Connections {
  /** Every open connection. */
  readonly all = new Set<Connection>();
  private readonly wss: WebSocketServer;
  private serial = 0;
  /** Per source, while it has WebSocket connections or proofs booked ahead. */
  private readonly sources = new Map<string, SourceState>();
  /** Unfinished incoming messages held, in all (see inbound.ts), and the connections holding some. */
  private receiveHeld = 0;
  private readonly receiving = new Set<Connection>();
  /** Bytes queued to connections, in all (as last seen per connection), and the connections with some. */
  private sendQueued = 0;
  private readonly sending = new Set<Connection>();

  constructor(
    private readonly ctx: RelayContext,
    private readonly o: ConnectionsOptions,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: maxPayload(ctx.config),
      perMessageDeflate: false,
      clientTracking: false,
    });
  }

  /** For the gauges: sources held, and the receive and send buffers in all. */
  get sourceCount(): number {
    return this.sources.size;
  }
  get receiveBuffered(): number {
    return this.receiveHeld;
  }
  get sendBuffered(): number {
    return this.sendQueued;
  }

  /** What the relay keeps of a connection's source (its proof pace); undefined: none, or not kept. */
  sourceState(conn: Connection): SourceState | undefined {
    return conn.source === null ? undefined : this.sources.get(conn.source);
  }

  /** An HTTP upgrade request: refused while draining or at a limit, else a new connection. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    // The HTTP server's socket timeout no longer applies: the connection's own deadlines do.
    (socket as Socket).setTimeout?.(0);
    const refuse = (status: string, reason: "draining" | "limit" | "source") => {
      this.ctx.metrics.rejectedConnections.inc({ reason });
      // Destroy after the response: a peer that never closes its half must not hold the socket.
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () =>
        socket.destroy(),
      );
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    if (this.ctx.draining) {
      refuse("503 Service Unavailable", "draining");
      return;
    }
    if (this.all.size >= this.o.maxConnections) {
      refuse("503 Service Unavailable", "limit");
      return;
    }
    const source = sourceOf(req.socket.remoteAddress ?? "", req.headers["x-forwarded-for"], this.o.trust);
    const state = source === null ? undefined : this.sources.get(source);
    if (state && state.connections >= this.ctx.config.maxConnectionsPerSource) {
      refuse("429 Too Many Requests", "source");
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket, source));
  }

  private accept(ws: WebSocket, socket: Duplex, source: string | null): void {
    const conn = new Connection(ws, socket, ++this.serial, source, this.ctx.config);
    this.all.add(conn);
    if (source !== null) {
      let state = this.sources.get(source);
      if (!state) {
        const rate = this.ctx.config.proofRatePerSource;
        state = { connections: 0, proofs: new Pace(rate, rate * 2) };
        this.sources.set(source, state);
      }
      state.connections++;
    }
    this.ctx.metrics.connectionsTotal.inc();
    this.ctx.metrics.gauges.connections.set(this.all.size);
    // Counted before ws reads it: what arrives is weighed first (see inbound.ts).
    socket.prependListener("data", (chunk: Buffer) => this.received(conn, chunk));
    this.armDeadline(conn, this.ctx.config.handshakeTimeoutSeconds * 1000);
    ws.on("pong", () => {
      conn.alive = true;
    });
    ws.on("message", (data, isBinary) => this.o.events.message(conn, data as Buffer, isBinary));
    ws.on("error", (err) => this.ctx.log.debug({ conn: conn.serial, err: err.message }, "connection error"));
    ws.on("close", () => this.forget(conn));
  }

  /**
   * The connection's deadline: a hello within --handshake-timeout; then, while it has no
   * subscription, a frame at least every --idle-timeout. A subscribed connection is kept by its
   * answers to the heartbeat's pings.
   */
  armDeadline(conn: Connection, ms: number): void {
    clearTimeout(conn.deadline);
    conn.deadline = setTimeout(() => {
      if (conn.cut || conn.ws.readyState !== conn.ws.OPEN) return;
      if (!conn.helloDone) return this.close(conn, 1008, "no hello", "hello-timeout");
      const idleMs = this.ctx.config.idleTimeoutSeconds * 1000;
      const quiet = performance.now() - conn.lastFrame;
      if (conn.subscriptions.size === 0 && quiet >= idleMs) return this.close(conn, 1000, "idle", "idle");
      this.armDeadline(conn, conn.subscriptions.size === 0 ? idleMs - quiet : idleMs);
    }, ms);
    conn.deadline.unref();
  }

  /** Pings every connection; one that did not answer the last ping is dropped. */
  beat(): void {
    for (const conn of this.all) {
      if (!conn.alive) {
        this.ctx.metrics.closedConnections.inc({ reason: "heartbeat" });
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
    }
  }

  /** Closes a connection (a close frame if it can still be sent); dropped if it does not answer soon. */
  private close(conn: Connection, code: number, reason: string, why: CloseReason): void {
    this.ctx.metrics.closedConnections.inc({ reason: why });
    this.ctx.log.debug({ conn: conn.serial, reason: why }, "closing connection");
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
    this.ctx.metrics.closedConnections.inc({ reason: why });
    this.ctx.log.debug({ conn: conn.serial, reason: why }, "connection cut off");
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

  private forget(conn: Connection): void {
    if (!this.all.delete(conn)) return;
    clearTimeout(conn.deadline);
    this.release(conn);
    this.o.events.closed(conn);
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
    this.ctx.metrics.gauges.connections.set(this.all.size);
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
    if (held > receiveCap(this.ctx.config)) {
      this.cut(conn, 1009, "message too big", "receive-limit");
      chunk.fill(0xff);
      return;
    }
    while (this.receiveHeld > this.ctx.config.maxReceiveBufferBytes && this.receiving.size > 0) {
      let largest: Connection | undefined;
      for (const c of this.receiving) if (!largest || c.meter.held > largest.meter.held) largest = c;
      this.cut(largest!, 1008, "relay receive buffer full", "receive-budget");
      if (largest === conn) chunk.fill(0xff);
    }
  }

  // ---- sending ------------------------------------------------------------------------------

  send(conn: Connection, frame: Frame): void {
    if (conn.cut || conn.ws.readyState !== conn.ws.OPEN) return;
    conn.ws.send(encodeFrame(frame));
    this.queued(conn);
  }

  error(conn: Connection, requestId: number, code: RelayErrorName, message: string): void {
    this.ctx.metrics.errors.inc({ code });
    this.send(conn, { type: "error", requestId, code, message });
  }

  /** Counts a protocol violation; too many close the connection (1008 policy violation). */
  violation(conn: Connection, requestId: number, code: RelayErrorName, message: string): void {
    this.error(conn, requestId, code, message);
    if (++conn.violations === MAX_VIOLATIONS)
      this.close(conn, 1008, "too many malformed frames", "violations");
  }

  /**
   * Notes what is queued to a connection after a write. Reading from it pauses while more than
   * PAUSE_READING_AT waits (it gets no more answers to queue); beyond --max-outstanding-bytes it is
   * cut off; and while all queues together pass --max-send-buffer, the largest is cut off.
   */
  private queued(conn: Connection): void {
    if (conn.cut || !this.all.has(conn)) return;
    const q = conn.ws.bufferedAmount;
    this.sendQueued += q - conn.queued;
    conn.queued = q;
    if (q > 0) this.sending.add(conn);
    else this.sending.delete(conn);
    if (q > this.ctx.config.maxOutstandingBytes) {
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
    if (this.sendQueued <= this.ctx.config.maxSendBufferBytes) return;
    // The per-connection figures are as last seen: read them again before cutting anyone off.
    this.sendQueued = 0;
    for (const c of this.sending) {
      c.queued = c.ws.bufferedAmount;
      this.sendQueued += c.queued;
      if (c.queued === 0) this.sending.delete(c);
    }
    while (this.sendQueued > this.ctx.config.maxSendBufferBytes && this.sending.size > 0) {
      let largest: Connection | undefined;
      for (const c of this.sending) if (!largest || c.queued > largest.queued) largest = c;
      this.cut(largest!, 1008, "relay send buffer full", "send-budget");
    }
  }
}
