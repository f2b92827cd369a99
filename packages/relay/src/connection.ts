// One WebSocket connection's state: its handshake, its pacing (frames, proofs, file uploads), its
// subscriptions and the deliveries in flight on it (delivery.ts), and what it holds of the relay's
// receive and send buffers (connections.ts).
import { randomBytes } from "node:crypto";
import type { Duplex } from "node:stream";
import type { WebSocket } from "ws";
import { type ByteBucket, uploadBucket } from "./blobs.js";
import type { RelayConfig } from "./config.js";
import { InboundMeter } from "./inbound.js";
import { Pace } from "./sources.js";

/** A message delivered on a connection and not yet acknowledged. */
export interface InFlight {
  /** Mailbox (hex). */
  readonly key: string;
  readonly size: number;
  readonly expiresAt: number;
  /** An ack of it already went through without a rate-limit token: a repeat pays like any frame. */
  ackExempted: boolean;
}

/** What the relay keeps per source while it has connections (never logged, never stored). */
export interface SourceState {
  connections: number;
  readonly proofs: Pace;
}

export class Connection {
  readonly challenge = randomBytes(32);
  helloDone = false;
  alive = true;
  violations = 0;
  /** Frames it may send now (--rate-limit, a token bucket holding `burst`). */
  private tokens: number;
  private lastRefill = performance.now();
  private readonly rate: number;
  private readonly burst: number;
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
    /** Where it comes from (sources.ts); null: a trusted proxy that named no client. */
    readonly source: string | null,
    config: Pick<RelayConfig, "rateLimit" | "proofRate" | "uploadBytesPerSecond">,
  ) {
    this.rate = config.rateLimit;
    this.burst = config.rateLimit * 2;
    this.tokens = this.burst;
    this.proofs = new Pace(config.proofRate, config.proofRate * 2);
    this.upload = uploadBucket(config.uploadBytesPerSecond);
  }

  /** Takes a frame token (--rate-limit); false: none left, the frame is refused. */
  takeToken(): boolean {
    const t = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.lastRefill) / 1000) * this.rate);
    this.lastRefill = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
