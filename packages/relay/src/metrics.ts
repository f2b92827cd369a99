// Prometheus metrics, in a registry of the server's own (several relays may share a process in tests).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Why the relay closed a WebSocket connection (a label of parley_relay_closed_connections_total). */
export type CloseReason =
  | "hello-timeout"
  | "idle"
  | "heartbeat"
  | "violations"
  | "slow-reader"
  | "receive-limit"
  | "receive-budget"
  | "send-budget";

export class RelayMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({
    name: "parley_relay_connections",
    help: "Open WebSocket connections",
    registers: [this.registry],
  });
  readonly connectionsTotal = new Counter({
    name: "parley_relay_connections_total",
    help: "WebSocket connections accepted",
    registers: [this.registry],
  });
  readonly rejectedConnections = new Counter({
    name: "parley_relay_rejected_connections_total",
    help: "WebSocket upgrades refused, by reason: limit (--max-connections), source (--max-connections-per-source), draining",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly sockets = new Gauge({
    name: "parley_relay_sockets",
    help: "Open TCP connections, HTTP and WebSocket",
    registers: [this.registry],
  });
  readonly refusedSockets = new Counter({
    name: "parley_relay_refused_sockets_total",
    help: "TCP connections destroyed on arrival, by reason: limit (--max-connections plus --http-reserve), source (one peer's share)",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly maxConnections = new Gauge({
    name: "parley_relay_max_connections",
    help: "WebSocket connections allowed: --max-connections, or fewer when file descriptors are short",
    registers: [this.registry],
  });
  readonly sources = new Gauge({
    name: "parley_relay_sources",
    help: "Distinct sources (IP addresses, IPv6 /64s) with WebSocket connections or proofs pending",
    registers: [this.registry],
  });
  readonly closedConnections = new Counter({
    name: "parley_relay_closed_connections_total",
    help: "WebSocket connections the relay closed, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly receiveBuffer = new Gauge({
    name: "parley_relay_receive_buffer_bytes",
    help: "Unfinished incoming messages held, with their bookkeeping (bounded by --max-receive-buffer)",
    registers: [this.registry],
  });
  readonly sendBuffer = new Gauge({
    name: "parley_relay_send_buffer_bytes",
    help: "Bytes queued to connections as last seen (bounded by --max-send-buffer)",
    registers: [this.registry],
  });
  readonly proofs = new Counter({
    name: "parley_relay_proofs_total",
    help: "Ownership proofs, by result: valid, invalid, throttled (answered RATE_LIMITED unchecked)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly proofSecondOpinions = new Counter({
    name: "parley_relay_proof_second_opinions_total",
    help: "Proofs OpenSSL refused that were checked again with noble (the cofactored equation)",
    registers: [this.registry],
  });
  readonly deposits = new Counter({
    name: "parley_relay_deposits_total",
    help: "Messages stored",
    registers: [this.registry],
  });
  readonly duplicateDeposits = new Counter({
    name: "parley_relay_duplicate_deposits_total",
    help: "Retried deposits recognised by client message id and stored once",
    registers: [this.registry],
  });
  readonly deliveries = new Counter({
    name: "parley_relay_deliveries_total",
    help: "Messages pushed to a subscribed owner",
    registers: [this.registry],
  });
  readonly acks = new Counter({
    name: "parley_relay_acks_total",
    help: "Messages deleted on ack",
    registers: [this.registry],
  });
  readonly expirations = new Counter({
    name: "parley_relay_expirations_total",
    help: "Messages deleted at the end of their retention",
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: "parley_relay_errors_total",
    help: "Error frames sent, by code",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  readonly storedMessages = new Gauge({
    name: "parley_relay_stored_messages",
    help: "Messages waiting",
    registers: [this.registry],
  });
  readonly storageUp = new Gauge({
    name: "parley_relay_storage_up",
    help: "1 while the storage answered the last read of its totals, 0 while it is unavailable",
    registers: [this.registry],
  });
  readonly storedBytes = new Gauge({
    name: "parley_relay_stored_bytes",
    help: "Ciphertext bytes waiting",
    registers: [this.registry],
  });
  readonly storageBytes = new Gauge({
    name: "parley_relay_storage_bytes",
    help: "What counts against --max-storage now (SQLite: its files; memory, Redis: ciphertext plus fixed costs)",
    registers: [this.registry],
  });
  readonly storageLimitBytes = new Gauge({
    name: "parley_relay_storage_limit_bytes",
    help: "--max-storage as resolved at start: beyond it deposits and new mailboxes get QUOTA",
    registers: [this.registry],
  });
  readonly mailboxes = new Gauge({
    name: "parley_relay_mailboxes",
    help: "Mailboxes stored",
    registers: [this.registry],
  });
  readonly mailboxLimit = new Gauge({
    name: "parley_relay_mailbox_limit",
    help: "--max-mailboxes as resolved at start: beyond it createMailbox gets QUOTA",
    registers: [this.registry],
  });
  readonly storageWritable = new Gauge({
    name: "parley_relay_storage_writable",
    help: "0 while the storage refuses new data because its disk is nearly full (see /readyz), else 1",
    registers: [this.registry],
  });
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
    const reasons: CloseReason[] = [
      "hello-timeout",
      "idle",
      "heartbeat",
      "violations",
      "slow-reader",
      "receive-limit",
      "receive-budget",
      "send-budget",
    ];
    for (const reason of reasons) this.closedConnections.inc({ reason }, 0);
  }
}
