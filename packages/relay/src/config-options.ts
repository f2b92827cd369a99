// The relay's options as a table: for each, its field in RelayConfig, its flag, its environment
// variable, the kind of value it takes (config-values.ts parses each kind) and its help line.
import type { RelayConfig } from "./config.js";

export type Kind =
  | "string"
  | "port"
  | "duration"
  | "size"
  | "count"
  | "storage"
  | "level"
  | "path"
  | "networks"
  | "switch";
export interface Option {
  key: keyof RelayConfig;
  flag: string;
  env: string;
  kind: Kind;
  help: string;
}

/** Every option: flag, environment variable, kind of value, and its help line. */
export const OPTIONS: readonly Option[] = [
  { key: "host", flag: "--host", env: "PARLEY_RELAY_HOST", kind: "string", help: "address to listen on" },
  {
    key: "port",
    flag: "--port",
    env: "PARLEY_RELAY_PORT",
    kind: "port",
    help: "TCP port (0 picks a free one)",
  },
  {
    key: "storage",
    flag: "--storage",
    env: "PARLEY_RELAY_STORAGE",
    kind: "storage",
    help: "sqlite, memory, or redis://[USER:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS)",
  },
  {
    key: "redisTimeoutSeconds",
    flag: "--redis-timeout",
    env: "PARLEY_RELAY_REDIS_TIMEOUT",
    kind: "duration",
    help: "Redis: a command or a connection attempt fails after this long",
  },
  {
    key: "redisRewriteSeconds",
    flag: "--redis-aof-rewrite",
    env: "PARLEY_RELAY_REDIS_AOF_REWRITE",
    kind: "duration",
    help: "Redis: how often the append-only file is rewritten, so deleted ciphertext leaves its files",
  },
  {
    key: "dataDir",
    flag: "--data-dir",
    env: "PARLEY_RELAY_DATA_DIR",
    kind: "path",
    help: "SQLite data directory",
  },
  {
    key: "ttlSeconds",
    flag: "--ttl",
    env: "PARLEY_RELAY_TTL",
    kind: "duration",
    help: "how long an undelivered message is kept",
  },
  {
    key: "maxTtlSeconds",
    flag: "--max-ttl",
    env: "PARLEY_RELAY_MAX_TTL",
    kind: "duration",
    help: "upper bound for --ttl",
  },
  {
    key: "maxMessageBytes",
    flag: "--max-message-size",
    env: "PARLEY_RELAY_MAX_MESSAGE_SIZE",
    kind: "size",
    help: "largest ciphertext in one message",
  },
  {
    key: "mailboxMaxMessages",
    flag: "--mailbox-max-messages",
    env: "PARLEY_RELAY_MAILBOX_MAX_MESSAGES",
    kind: "count",
    help: "messages waiting per mailbox",
  },
  {
    key: "mailboxMaxBytes",
    flag: "--mailbox-max-bytes",
    env: "PARLEY_RELAY_MAILBOX_MAX_BYTES",
    kind: "size",
    help: "bytes waiting per mailbox",
  },
  {
    key: "maxStorageBytes",
    flag: "--max-storage",
    env: "PARLEY_RELAY_MAX_STORAGE",
    kind: "size",
    help: "the most the storage holds, then deposits get QUOTA (SQLite: the data directory's files, at least 8MiB; by default half the disk space it could use at start; Redis: 1GiB; memory: 256MiB)",
  },
  {
    key: "maxMailboxes",
    flag: "--max-mailboxes",
    env: "PARLEY_RELAY_MAX_MAILBOXES",
    kind: "count",
    help: "the most mailboxes the storage holds (by default one per 4KiB of --max-storage)",
  },
  {
    key: "rateLimit",
    flag: "--rate-limit",
    env: "PARLEY_RELAY_RATE_LIMIT",
    kind: "count",
    help: "frames/s per connection",
  },
  {
    key: "maxBlobBytes",
    flag: "--max-blob-bytes",
    env: "PARLEY_RELAY_MAX_BLOB_BYTES",
    kind: "size",
    help: "the largest file, as stored: its sealed size (65552 bytes per 64KiB chunk; the default is a 100MiB file); beyond it createBlob gets TOO_LARGE",
  },
  {
    key: "maxBlobStorageBytes",
    flag: "--max-blob-storage",
    env: "PARLEY_RELAY_MAX_BLOB_STORAGE",
    kind: "size",
    help: "the most all files together may take, counted from their creation at their full size (by default half of --max-storage); beyond it createBlob gets QUOTA",
  },
  {
    key: "uploadBytesPerSecond",
    flag: "--upload-rate",
    env: "PARLEY_RELAY_UPLOAD_RATE",
    kind: "size",
    help: "file bytes per second one connection may upload, in bursts of 4MiB; beyond it putChunk gets RATE_LIMITED",
  },
  {
    key: "maxConnections",
    flag: "--max-connections",
    env: "PARLEY_RELAY_MAX_CONNECTIONS",
    kind: "count",
    help: "concurrent WebSocket connections",
  },
  {
    key: "maxConnectionsPerSource",
    flag: "--max-connections-per-source",
    env: "PARLEY_RELAY_MAX_CONNECTIONS_PER_SOURCE",
    kind: "count",
    help: "concurrent WebSocket connections from one IP address (IPv6: one /64)",
  },
  {
    key: "trustProxy",
    flag: "--trust-proxy",
    env: "PARLEY_RELAY_TRUST_PROXY",
    kind: "networks",
    help: "proxies whose X-Forwarded-For names the source: CIDR blocks or addresses, comma-separated, loopback, or none",
  },
  {
    key: "httpReserve",
    flag: "--http-reserve",
    env: "PARLEY_RELAY_HTTP_RESERVE",
    kind: "count",
    help: "TCP connections kept beyond --max-connections for /livez, /readyz, /metrics",
  },
  {
    key: "handshakeTimeoutSeconds",
    flag: "--handshake-timeout",
    env: "PARLEY_RELAY_HANDSHAKE_TIMEOUT",
    kind: "duration",
    help: "time for TLS, for the HTTP request headers, and for the WebSocket hello",
  },
  {
    key: "idleTimeoutSeconds",
    flag: "--idle-timeout",
    env: "PARLEY_RELAY_IDLE_TIMEOUT",
    kind: "duration",
    help: "a WebSocket with no subscription that sends nothing for this long is closed",
  },
  {
    key: "maxReceiveBufferBytes",
    flag: "--max-receive-buffer",
    env: "PARLEY_RELAY_MAX_RECEIVE_BUFFER",
    kind: "size",
    help: "unfinished incoming messages held for all connections together; beyond it the largest is cut off",
  },
  {
    key: "maxSendBufferBytes",
    flag: "--max-send-buffer",
    env: "PARLEY_RELAY_MAX_SEND_BUFFER",
    kind: "size",
    help: "bytes queued to all connections together; beyond it the largest queue is cut off",
  },
  {
    key: "proofRate",
    flag: "--proof-rate",
    env: "PARLEY_RELAY_PROOF_RATE",
    kind: "count",
    help: "ownership proofs checked per second per connection (bursts of twice that)",
  },
  {
    key: "proofRatePerSource",
    flag: "--proof-rate-per-source",
    env: "PARLEY_RELAY_PROOF_RATE_PER_SOURCE",
    kind: "count",
    help: "ownership proofs checked per second per source (bursts of twice that)",
  },
  {
    key: "unsafeSmallMessages",
    flag: "--unsafe-small-messages",
    env: "PARLEY_RELAY_UNSAFE_SMALL_MESSAGES",
    kind: "switch",
    help: "allow --max-message-size below the largest protocol envelope (testing clients only: it refuses their Accepts)",
  },
  {
    key: "maxOutstandingBytes",
    flag: "--max-outstanding-bytes",
    env: "PARLEY_RELAY_MAX_OUTSTANDING_BYTES",
    kind: "size",
    help: "bytes queued to one connection before it is paused or cut off",
  },
  {
    key: "sweepIntervalSeconds",
    flag: "--sweep-interval",
    env: "PARLEY_RELAY_SWEEP_INTERVAL",
    kind: "duration",
    help: "how often expired messages are deleted",
  },
  {
    key: "heartbeatSeconds",
    flag: "--heartbeat",
    env: "PARLEY_RELAY_HEARTBEAT",
    kind: "duration",
    help: "ping interval; no pong by the next ping ends the connection",
  },
  {
    key: "shutdownTimeoutSeconds",
    flag: "--shutdown-timeout",
    env: "PARLEY_RELAY_SHUTDOWN_TIMEOUT",
    kind: "duration",
    help: "drain time before a forced exit",
  },
  {
    key: "tlsCert",
    flag: "--tls-cert",
    env: "PARLEY_RELAY_TLS_CERT",
    kind: "path",
    help: "PEM certificate (enables TLS)",
  },
  { key: "tlsKey", flag: "--tls-key", env: "PARLEY_RELAY_TLS_KEY", kind: "path", help: "PEM private key" },
  {
    key: "logLevel",
    flag: "--log-level",
    env: "PARLEY_RELAY_LOG_LEVEL",
    kind: "level",
    help: "fatal..trace, or silent",
  },
];
