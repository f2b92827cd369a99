// Prometheus metrics, in a registry of the server's own (several relays may share a process in tests).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

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
    help: "Upgrades refused (connection limit or draining)",
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
  }
}
