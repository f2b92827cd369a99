// Prometheus metrics, in a registry of the server's own (several relays may share a process in tests).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Why the relay closes a WebSocket connection (the label of parley_relay_closed_connections_total). */
const CLOSE_REASONS = [
  "hello-timeout",
  "idle",
  "heartbeat",
  "violations",
  "slow-reader",
  "receive-limit",
  "receive-budget",
  "send-budget",
] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];

/**
 * Every gauge: its name in `RelayMetrics.gauges`, its metric name and its help. The relay sets them
 * from its state and its storage's totals when /metrics is read.
 */
const GAUGES = {
  connections: ["parley_relay_connections", "Open WebSocket connections"],
  sockets: ["parley_relay_sockets", "Open TCP connections, HTTP and WebSocket"],
  maxConnections: [
    "parley_relay_max_connections",
    "WebSocket connections allowed: --max-connections, or fewer when file descriptors are short",
  ],
  sources: [
    "parley_relay_sources",
    "Distinct sources (IP addresses, IPv6 /64s) with WebSocket connections or proofs pending",
  ],
  receiveBuffer: [
    "parley_relay_receive_buffer_bytes",
    "Unfinished incoming messages held, with their bookkeeping (bounded by --max-receive-buffer)",
  ],
  sendBuffer: [
    "parley_relay_send_buffer_bytes",
    "Bytes queued to connections as last seen (bounded by --max-send-buffer)",
  ],
  storedMessages: ["parley_relay_stored_messages", "Messages waiting"],
  storageUp: [
    "parley_relay_storage_up",
    "1 while the storage answered the last read of its totals, 0 while it is unavailable",
  ],
  storedBytes: ["parley_relay_stored_bytes", "Ciphertext bytes waiting"],
  storageBytes: [
    "parley_relay_storage_bytes",
    "What counts against --max-storage now (SQLite: its files; memory, Redis: ciphertext plus fixed costs)",
  ],
  storageLimitBytes: [
    "parley_relay_storage_limit_bytes",
    "--max-storage as resolved at start: beyond it deposits and new mailboxes get QUOTA",
  ],
  mailboxes: ["parley_relay_mailboxes", "Mailboxes stored"],
  mailboxLimit: [
    "parley_relay_mailbox_limit",
    "--max-mailboxes as resolved at start: beyond it createMailbox gets QUOTA",
  ],
  blobs: ["parley_relay_blobs", "Files (blobs) stored, complete or not"],
  blobBytes: ["parley_relay_blob_bytes", "Sealed file chunk bytes stored"],
  blobReservedBytes: [
    "parley_relay_blob_reserved_bytes",
    "Declared sealed sizes of every stored blob: what counts against --max-blob-storage",
  ],
  blobLimitBytes: [
    "parley_relay_blob_limit_bytes",
    "--max-blob-storage as resolved at start: beyond it createBlob gets QUOTA",
  ],
  storageWritable: [
    "parley_relay_storage_writable",
    "0 while the storage refuses new data because its disk is nearly full (see /readyz), else 1",
  ],
} as const;

export class RelayMetrics {
  readonly registry = new Registry();
  private counter<L extends string = never>(name: string, help: string, labelNames?: readonly L[]) {
    return new Counter<L>({ name, help, registers: [this.registry], ...(labelNames ? { labelNames } : {}) });
  }
  /** Every gauge of GAUGES, by its name there. */
  readonly gauges = Object.fromEntries(
    Object.entries(GAUGES).map(([key, [name, help]]) => [
      key,
      new Gauge({ name, help, registers: [this.registry] }),
    ]),
  ) as { readonly [K in keyof typeof GAUGES]: Gauge };
  readonly connectionsTotal = this.counter(
    "parley_relay_connections_total",
    "WebSocket connections accepted",
  );
  readonly rejectedConnections = this.counter(
    "parley_relay_rejected_connections_total",
    "WebSocket upgrades refused, by reason: limit (--max-connections), source (--max-connections-per-source), draining",
    ["reason"] as const,
  );
  readonly refusedSockets = this.counter(
    "parley_relay_refused_sockets_total",
    "TCP connections destroyed on arrival, by reason: limit (--max-connections plus --http-reserve), source (one peer's share)",
    ["reason"] as const,
  );
  readonly closedConnections = this.counter(
    "parley_relay_closed_connections_total",
    "WebSocket connections the relay closed, by reason",
    ["reason"] as const,
  );
  readonly proofs = this.counter(
    "parley_relay_proofs_total",
    "Ownership proofs, by result: valid, invalid, throttled (answered RATE_LIMITED unchecked)",
    ["result"] as const,
  );
  readonly proofSecondOpinions = this.counter(
    "parley_relay_proof_second_opinions_total",
    "Proofs OpenSSL refused that were checked again with noble (the cofactored equation)",
  );
  readonly deposits = this.counter("parley_relay_deposits_total", "Messages stored");
  readonly duplicateDeposits = this.counter(
    "parley_relay_duplicate_deposits_total",
    "Retried deposits recognised by client message id and stored once",
  );
  readonly deliveries = this.counter(
    "parley_relay_deliveries_total",
    "Messages pushed to a subscribed owner",
  );
  readonly acks = this.counter("parley_relay_acks_total", "Messages deleted on ack");
  readonly expirations = this.counter(
    "parley_relay_expirations_total",
    "Messages deleted at the end of their retention",
  );
  readonly errors = this.counter("parley_relay_errors_total", "Error frames sent, by code", [
    "code",
  ] as const);
  readonly blobsCreated = this.counter("parley_relay_blobs_created_total", "Blobs created");
  readonly blobsCompleted = this.counter(
    "parley_relay_blobs_completed_total",
    "Blobs deleted because every reader said it was done",
  );
  readonly blobsWithdrawn = this.counter(
    "parley_relay_blobs_withdrawn_total",
    "Blobs deleted by their uploader",
  );
  readonly blobExpirations = this.counter(
    "parley_relay_blob_expirations_total",
    "Blobs deleted at the end of their retention",
  );
  readonly blobBytesIn = this.counter(
    "parley_relay_blob_bytes_in_total",
    "Sealed chunk bytes stored (retries not counted)",
  );
  readonly blobBytesOut = this.counter(
    "parley_relay_blob_bytes_out_total",
    "Sealed chunk bytes sent to readers",
  );
  readonly uploadsThrottled = this.counter(
    "parley_relay_uploads_throttled_total",
    "putChunk frames answered RATE_LIMITED by --upload-rate",
  );
  readonly depositLatency = new Histogram({
    name: "parley_relay_deposit_seconds",
    help: "Time from a deposit frame's arrival to its durable acknowledgement",
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly deliveryLatency = new Histogram({
    name: "parley_relay_delivery_seconds",
    help: "Time from a message's arrival to its push to a subscribed owner",
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 10, 60],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "parley_relay_" });
    // Every label value is shown from the start, at 0, so that a rate over it has a beginning.
    for (const reason of ["limit", "source", "draining"]) this.rejectedConnections.inc({ reason }, 0);
    for (const reason of ["limit", "source"]) this.refusedSockets.inc({ reason }, 0);
    for (const result of ["valid", "invalid", "throttled"]) this.proofs.inc({ result }, 0);
    for (const reason of CLOSE_REASONS) this.closedConnections.inc({ reason }, 0);
  }
}
