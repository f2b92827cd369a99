// Relay configuration: one explicit defaults object, overridden by environment variables, then by
// command-line flags. Every problem is collected and reported at once, one clear line each.
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { createSecureContext } from "node:tls";
import { MAX_ENVELOPE_LENGTH, SEALED_CHUNK_BYTES } from "@parley/protocol";

export type StorageKind = "sqlite" | "memory" | "redis";

/** A 100 MiB file as the relay stores it: 1600 chunks sealed to 65 552 bytes each (PROTOCOL.md §14.1). */
export const DEFAULT_MAX_BLOB_BYTES = 1600 * SEALED_CHUNK_BYTES;
/** An upload may run ahead of --upload-rate by this much (64 full chunks). */
export const UPLOAD_BURST_BYTES = 4 * 1024 * 1024;
/** The largest putChunk frame: header 6, blob id 32, write token 32, index 4, a full sealed chunk. */
export const MAX_PUT_CHUNK_FRAME = 6 + 32 + 32 + 4 + SEALED_CHUNK_BYTES;

/** The smallest --max-storage: room for the reserve and the WAL's allowance (1 MiB each) and data. */
export const MIN_MAX_STORAGE_BYTES = 8 * 1024 * 1024;

/** A Redis (or Valkey) server, from `--storage redis://[USER:PASSWORD@]HOST[:PORT][/DB]`. */
export interface RedisTarget {
  /** `rediss://`: TLS, with the host name checked against the server's certificate. */
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly username: string | null;
  readonly password: string | null;
}
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface RelayConfig {
  host: string;
  port: number;
  storage: StorageKind;
  /** Where Redis is, when `storage` is "redis" (from the --storage URL); otherwise null. */
  redis: RedisTarget | null;
  /** A Redis command, or an attempt to connect, fails after this long. */
  redisTimeoutSeconds: number;
  /** How often one of the relays sharing a Redis asks it to rewrite its append-only file. */
  redisRewriteSeconds: number;
  dataDir: string;
  /** Retention of an undelivered message, in seconds. */
  ttlSeconds: number;
  /** The most an operator may set `ttlSeconds` to. */
  maxTtlSeconds: number;
  /** Largest ciphertext in one deposit, in bytes. */
  maxMessageBytes: number;
  mailboxMaxMessages: number;
  mailboxMaxBytes: number;
  /**
   * The most the storage may hold, in bytes (SQLite: its data directory's files); null: chosen at
   * start (see `--help`).
   */
  maxStorageBytes: number | null;
  /** The most mailboxes the storage holds; null: one per 4 KiB of the storage cap. */
  maxMailboxes: number | null;
  /** Frames per second one connection may send (token bucket; bursts of twice this). */
  rateLimit: number;
  /** The largest blob, in sealed bytes (a createBlob's sealedSize; beyond it TOO_LARGE). */
  maxBlobBytes: number;
  /** The most all blobs together may reserve, in sealed bytes; null: half of --max-storage. */
  maxBlobStorageBytes: number | null;
  /** Sealed chunk bytes per second one connection may upload (bursts of UPLOAD_BURST_BYTES). */
  uploadBytesPerSecond: number;
  maxConnections: number;
  /** WebSocket connections one source (an IP address, an IPv6 /64) may hold. */
  maxConnectionsPerSource: number;
  /**
   * Peers (CIDR blocks) whose `X-Forwarded-For` names the source of a connection; a connection
   * from one of them that names none is not limited per source.
   */
  trustProxy: string[];
  /** TCP connections beyond `maxConnections` kept for HTTP (/livez, /readyz, /metrics). */
  httpReserve: number;
  /** Time for TLS, the HTTP request headers, and the WebSocket hello, each. */
  handshakeTimeoutSeconds: number;
  /** A WebSocket connection with no subscription is closed after this long without a frame. */
  idleTimeoutSeconds: number;
  /** Bytes of messages received but not yet complete, held for all connections together. */
  maxReceiveBufferBytes: number;
  /** Bytes queued to all connections together before the largest queue is cut off. */
  maxSendBufferBytes: number;
  /** Ownership proofs per second one connection may have checked (bursts of twice this). */
  proofRate: number;
  /** Ownership proofs per second one source may have checked (bursts of twice this). */
  proofRatePerSource: number;
  /** Accept a `maxMessageBytes` below the protocol's largest envelope (for testing clients only). */
  unsafeSmallMessages: boolean;
  /** Bytes queued to a connection (unsent or unacknowledged) before it is paused or cut off. */
  maxOutstandingBytes: number;
  sweepIntervalSeconds: number;
  heartbeatSeconds: number;
  /** Seconds a drain may take before the process exits anyway. */
  shutdownTimeoutSeconds: number;
  tlsCert: string | null;
  tlsKey: string | null;
  logLevel: LogLevel;
}

export const DEFAULTS: Readonly<RelayConfig> = Object.freeze({
  host: "127.0.0.1",
  port: 7700,
  storage: "sqlite",
  redis: null,
  redisTimeoutSeconds: 5,
  redisRewriteSeconds: 3600,
  dataDir: "./parley-relay-data",
  ttlSeconds: 7 * 86400,
  maxTtlSeconds: 30 * 86400,
  maxMessageBytes: 64 * 1024,
  mailboxMaxMessages: 10_000,
  mailboxMaxBytes: 64 * 1024 * 1024,
  maxStorageBytes: null,
  maxMailboxes: null,
  rateLimit: 200,
  maxBlobBytes: DEFAULT_MAX_BLOB_BYTES,
  maxBlobStorageBytes: null,
  uploadBytesPerSecond: 8 * 1024 * 1024,
  maxConnections: 20_000,
  maxConnectionsPerSource: 64,
  trustProxy: ["127.0.0.0/8", "::1/128"],
  httpReserve: 32,
  handshakeTimeoutSeconds: 10,
  idleTimeoutSeconds: 300,
  maxReceiveBufferBytes: 64 * 1024 * 1024,
  maxSendBufferBytes: 256 * 1024 * 1024,
  proofRate: 20,
  proofRatePerSource: 100,
  unsafeSmallMessages: false,
  maxOutstandingBytes: 4 * 1024 * 1024,
  sweepIntervalSeconds: 5,
  heartbeatSeconds: 30,
  shutdownTimeoutSeconds: 10,
  tlsCert: null,
  tlsKey: null,
  logLevel: "info",
});

type Kind =
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
interface Option {
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

const LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kib: 1024,
  kb: 1000,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  gib: 1024 ** 3,
};

/**
 * A URL with any user name and password replaced by `***`, fit for an error message or a log:
 * everything between the scheme and the last `@`, since a password may hold `/` and `@` itself.
 */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:(?:\/\/)?)[\s\S]*@/i, "$1***@");
}

/** The largest database number accepted in a Redis URL (Redis has 16 unless `databases` says more). */
export const MAX_REDIS_DB = 9999;

/** `host:port/db`, for logs and messages: never the user name or password. */
export function redisDisplay(t: RedisTarget): string {
  return `${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}/${t.db}${t.tls ? " (TLS)" : ""}`;
}

/**
 * `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` or `rediss://...` (TLS). Port 6379 and database 0 by
 * default; user name and password are percent-decoded. Returns a problem (never naming the
 * password) for anything else.
 */
export function parseRedisUrl(text: string): RedisTarget | { problem: string } {
  const shown = `"${redactUrl(text)}"`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    const hint = /@/.test(text) ? " (percent-encode the user name and password)" : "";
    return { problem: `${shown} is not a valid URL${hint}` };
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    return { problem: `${shown} must be sqlite, memory, or a redis:// or rediss:// URL` };
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "") return { problem: `${shown} names no host` };
  if (url.search !== "" || url.hash !== "") {
    return { problem: `${shown}: query strings and fragments are not supported` };
  }
  const path = url.pathname;
  const m = /^\/?(\d{0,9})$/.exec(path);
  if (!m) return { problem: `${shown}: the path must be a database number, such as /0` };
  const db = m[1] === "" ? 0 : Number(m[1]);
  if (db > MAX_REDIS_DB) return { problem: `${shown}: database ${db} is above ${MAX_REDIS_DB}` };
  if (url.port === "0") return { problem: `${shown}: port 0 is not a port Redis can listen on` };
  const decode = (s: string) => (s === "" ? null : decodeURIComponent(s));
  return {
    tls: url.protocol === "rediss:",
    host,
    port: url.port === "" ? 6379 : Number(url.port),
    db,
    username: decode(url.username),
    password: decode(url.password),
  };
}

/** "30s", "15m", "7d", "2h" or a bare number of seconds. Returns null if it is none of those. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+)(s|m|h|d)?$/.exec(text.trim());
  if (!m) return null;
  const value = Number(m[1]) * UNITS[m[2] ?? "s"]!;
  return Number.isSafeInteger(value) ? value : null;
}

/** Seconds as people write them, in the largest unit that is exact: 604800 is "7d", 90 is "90s". */
export function formatDuration(seconds: number): string {
  for (const unit of ["d", "h", "m"] as const) {
    if (seconds !== 0 && seconds % UNITS[unit]! === 0) return `${seconds / UNITS[unit]!}${unit}`;
  }
  return `${seconds}s`;
}

/** Bytes as people write them, in the largest binary unit that is exact: 65536 is "64KiB". */
export function formatSize(bytes: number): string {
  for (const unit of ["GiB", "MiB", "KiB"] as const) {
    const size = SIZE_UNITS[unit.toLowerCase()]!;
    if (bytes !== 0 && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

/** "65536", "64KiB", "4MiB", "1MB". Returns null if it is none of those. */
export function parseSize(text: string): number | null {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  if (!m) return null;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  const value = Number(m[1]) * unit;
  return Number.isSafeInteger(value) ? value : null;
}

/** `--trust-proxy loopback`: the addresses a proxy on the same machine connects from. */
const LOOPBACK = ["127.0.0.0/8", "::1/128"];

/**
 * "none", or a comma-separated list of CIDR blocks (`10.0.0.0/8`, `fd00::/8`), single addresses
 * and `loopback`. Returns the blocks as `address/prefix`, or a problem naming the bad item.
 */
export function parseNetworks(text: string): string[] | { problem: string } {
  if (text.trim() === "none") return [];
  const out: string[] = [];
  for (const item of text.split(",").map((x) => x.trim())) {
    if (item === "loopback") {
      out.push(...LOOPBACK);
      continue;
    }
    const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(item);
    const family = m ? isIP(m[1]!) : 0;
    const bits = family === 4 ? 32 : 128;
    const prefix = m?.[2] === undefined ? bits : Number(m[2]);
    if (!m || family === 0 || prefix > bits) {
      return { problem: `"${item}" is not an address or a CIDR block such as 10.0.0.0/8 or fd00::/8` };
    }
    out.push(`${m[1]}/${prefix}`);
  }
  return out;
}

function parseValue(o: Option, raw: string, source: string): { value?: unknown; problem?: string } {
  const where = `${source} ${o.flag === source ? "" : `(${o.flag})`}`.trim();
  switch (o.kind) {
    case "string":
    case "path":
      return raw === "" ? { problem: `${where}: must not be empty` } : { value: raw };
    case "port": {
      const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
      return n >= 0 && n <= 65535
        ? { value: n }
        : { problem: `${where}: "${raw}" is not a port number (0-65535)` };
    }
    case "duration": {
      const d = parseDuration(raw);
      return d !== null && d > 0
        ? { value: d }
        : { problem: `${where}: "${raw}" is not a duration such as 30s, 15m, 12h or 7d` };
    }
    case "size": {
      const s = parseSize(raw);
      return s !== null && s > 0
        ? { value: s }
        : { problem: `${where}: "${raw}" is not a size such as 65536, 64KiB or 4MiB` };
    }
    case "count": {
      const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
      return Number.isSafeInteger(n) && n > 0
        ? { value: n }
        : { problem: `${where}: "${raw}" is not a positive whole number` };
    }
    case "storage": {
      if (raw === "sqlite" || raw === "memory") return { value: { storage: raw, redis: null } };
      if (!/^[a-z][a-z0-9+.-]*:/i.test(raw)) {
        return { problem: `${where}: "${raw}" must be sqlite, memory, or a redis:// or rediss:// URL` };
      }
      const target = parseRedisUrl(raw);
      return "problem" in target
        ? { problem: `${where}: ${target.problem}` }
        : { value: { storage: "redis", redis: target } };
    }
    case "networks": {
      const networks = parseNetworks(raw);
      return Array.isArray(networks)
        ? { value: networks }
        : { problem: `${where}: ${networks.problem}, or none, or loopback` };
    }
    case "switch":
      if (/^(1|true|yes|on)$/i.test(raw)) return { value: true };
      if (/^(0|false|no|off)?$/i.test(raw)) return { value: false };
      return { problem: `${where}: "${raw}" is not true or false` };
    case "level":
      return (LEVELS as readonly string[]).includes(raw)
        ? { value: raw }
        : { problem: `${where}: "${raw}" must be one of ${LEVELS.join(", ")}` };
  }
}

/** --max-blob-storage as resolved: by default half of the storage cap (--max-storage as resolved). */
export function blobStorageCap(
  config: Pick<RelayConfig, "maxBlobStorageBytes">,
  maxStorageBytes: number,
): number {
  return config.maxBlobStorageBytes ?? Math.floor(maxStorageBytes / 2);
}

/**
 * The WebSocket `maxPayload`: the ciphertext cap plus the fixed fields of the largest frame that
 * carries one (a tokenDeposit: header 6, address 32, token 32, client message id 16).
 */
export function maxPayload(config: Pick<RelayConfig, "maxMessageBytes">): number {
  // A full putChunk must pass too, whatever the ciphertext cap: chunks are not bounded by it.
  return Math.max(config.maxMessageBytes + 6 + 32 + 32 + 16, MAX_PUT_CHUNK_FRAME);
}

/**
 * What one connection may hold of a message still arriving: the largest frame, plus room for the
 * bookkeeping of the pieces it may come in (see inbound.ts). Beyond it the connection is closed (1009).
 */
export function receiveCap(config: Pick<RelayConfig, "maxMessageBytes">): number {
  return maxPayload(config) + 128 * 1024;
}

/** Problems with the TLS certificate and key files: unreadable, not PEM, or not a pair. */
function tlsProblems(certPath: string | null, keyPath: string | null): string[] {
  const problems: string[] = [];
  const read = (flag: string, path: string | null): Buffer | null => {
    if (path === null) return null;
    try {
      return readFileSync(path);
    } catch (e) {
      problems.push(`${flag}: cannot read ${path}: ${(e as Error).message}`);
      return null;
    }
  };
  const cert = read("--tls-cert", certPath);
  const key = read("--tls-key", keyPath);
  // OpenSSL's reasons ("PEM routines::no start line") follow the file name.
  const reason = (e: unknown) => (e as Error).message.replace(/^error:[0-9A-F]+:/, "");
  let usable = cert !== null && key !== null;
  if (cert !== null) {
    try {
      createSecureContext({ cert });
    } catch (e) {
      problems.push(`--tls-cert: ${certPath} is not a PEM certificate (${reason(e)})`);
      usable = false;
    }
  }
  if (key !== null) {
    try {
      createPrivateKey(key);
    } catch (e) {
      problems.push(`--tls-key: ${keyPath} is not a PEM private key (${reason(e)})`);
      usable = false;
    }
  }
  if (usable) {
    try {
      createSecureContext({ cert: cert!, key: key! });
    } catch (e) {
      problems.push(`--tls-cert and --tls-key: the key does not belong to the certificate (${reason(e)})`);
    }
  }
  return problems;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

export interface ParsedArgs {
  config: RelayConfig;
  help: boolean;
  version: boolean;
}

/**
 * Builds the configuration: defaults, then `env`, then `argv` (flags as `--name value` or
 * `--name=value`). Throws one ConfigError listing every problem.
 */
export function loadConfig(
  argv: readonly string[],
  env: Record<string, string | undefined> = {},
): ParsedArgs {
  const problems: string[] = [];
  const config: RelayConfig = { ...DEFAULTS };
  const set = (o: Option, raw: string, source: string) => {
    const { value, problem } = parseValue(o, raw, source);
    if (problem) problems.push(problem);
    else if (o.kind === "storage") Object.assign(config, value);
    else (config as unknown as Record<string, unknown>)[o.key] = value;
  };
  for (const o of OPTIONS) {
    const raw = env[o.env];
    if (raw !== undefined) set(o, raw, o.env);
  }
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (arg === "--version") {
      version = true;
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const o = OPTIONS.find((x) => x.flag === name);
    if (!o) {
      problems.push(`${name}: unknown option (see --help)`);
      continue;
    }
    // A switch takes no value (`--unsafe-small-messages`), unless given one with `=`.
    const raw = eq >= 0 ? arg.slice(eq + 1) : o.kind === "switch" ? "true" : argv[++i];
    if (raw === undefined) problems.push(`${name}: needs a value`);
    else set(o, raw, name);
  }
  // Timers beyond ~24.8 days overflow to 1 ms in Node, and the retention travels as a u32.
  const ceilings: [keyof RelayConfig, string, number][] = [
    ["maxTtlSeconds", "--max-ttl", 366 * 86400],
    ["sweepIntervalSeconds", "--sweep-interval", 86400],
    ["heartbeatSeconds", "--heartbeat", 86400],
    ["shutdownTimeoutSeconds", "--shutdown-timeout", 3600],
    ["redisTimeoutSeconds", "--redis-timeout", 600],
    ["redisRewriteSeconds", "--redis-aof-rewrite", 86400],
    ["handshakeTimeoutSeconds", "--handshake-timeout", 300],
    ["idleTimeoutSeconds", "--idle-timeout", 86400],
  ];
  for (const [key, flag, max] of ceilings) {
    if ((config[key] as number) > max) problems.push(`${flag}: at most ${formatDuration(max)}`);
  }
  if (config.ttlSeconds > config.maxTtlSeconds) {
    problems.push(
      `--ttl: ${formatDuration(config.ttlSeconds)} is longer than --max-ttl (${formatDuration(config.maxTtlSeconds)})`,
    );
  }
  if ((config.tlsCert === null) !== (config.tlsKey === null)) {
    problems.push("--tls-cert and --tls-key: give both or neither");
  }
  problems.push(...tlsProblems(config.tlsCert, config.tlsKey));
  if (config.maxMessageBytes < MAX_ENVELOPE_LENGTH && !config.unsafeSmallMessages) {
    problems.push(
      `--max-message-size: at least ${MAX_ENVELOPE_LENGTH} bytes, the largest envelope a client sends (an Accept, PROTOCOL.md §8.4); below that, invitations could never be accepted`,
    );
  }
  if (config.mailboxMaxBytes < config.maxMessageBytes) {
    problems.push("--mailbox-max-bytes: smaller than --max-message-size, so no message could ever be stored");
  }
  if (config.maxMessageBytes > 16 * 1024 * 1024) problems.push("--max-message-size: at most 16MiB");
  if (config.maxStorageBytes !== null && config.maxStorageBytes < MIN_MAX_STORAGE_BYTES) {
    problems.push(`--max-storage: at least ${formatSize(MIN_MAX_STORAGE_BYTES)}`);
  }
  if (config.maxOutstandingBytes < config.maxMessageBytes * 2) {
    problems.push("--max-outstanding-bytes: must be at least twice --max-message-size");
  }
  // A connection whose queue passes --max-outstanding-bytes is cut off: below two chunk frames, a
  // file could not be downloaded. Allowed with --unsafe-small-messages, for tests of small windows.
  if (config.maxOutstandingBytes < 2 * MAX_PUT_CHUNK_FRAME && !config.unsafeSmallMessages) {
    problems.push(
      `--max-outstanding-bytes: must be at least ${2 * MAX_PUT_CHUNK_FRAME} bytes, two file chunks (below that only with --unsafe-small-messages)`,
    );
  }
  if (config.maxBlobBytes < SEALED_CHUNK_BYTES) {
    problems.push(`--max-blob-bytes: at least ${SEALED_CHUNK_BYTES} bytes, one sealed chunk`);
  }
  if (config.maxBlobBytes > Number.MAX_SAFE_INTEGER) problems.push("--max-blob-bytes: too large");
  if (config.maxBlobStorageBytes !== null && config.maxBlobStorageBytes < config.maxBlobBytes) {
    problems.push(
      "--max-blob-storage: smaller than --max-blob-bytes, so the largest file could never be stored",
    );
  }
  if (config.uploadBytesPerSecond < 1024) problems.push("--upload-rate: at least 1KiB (per second)");
  if (config.maxReceiveBufferBytes < receiveCap(config)) {
    problems.push(
      `--max-receive-buffer: at least ${formatSize(receiveCap(config))}, what one connection may hold while a message of --max-message-size arrives`,
    );
  }
  if (config.maxSendBufferBytes < config.maxOutstandingBytes) {
    problems.push("--max-send-buffer: must be at least --max-outstanding-bytes");
  }
  // --help and --version answer even when the rest of the configuration is wrong.
  if (problems.length > 0 && !help && !version) throw new ConfigError(problems);
  return { config, help, version };
}

/** An option's default as it would be typed: `7d`, `64KiB`, `sqlite`. */
function shownDefault(o: Option): string | null {
  const value = DEFAULTS[o.key];
  if (value === null || o.kind === "switch") return null;
  if (o.kind === "networks") return (value as string[]).length === 0 ? "none" : (value as string[]).join(",");
  if (o.kind === "duration") return formatDuration(value as number);
  if (o.kind === "size") return formatSize(value as number);
  return String(value);
}

/** What each kind of value looks like in the help. */
const PLACEHOLDER: Record<Kind, string> = {
  string: "ADDRESS",
  port: "PORT",
  duration: "D",
  size: "SIZE",
  count: "N",
  storage: "STORAGE",
  level: "LEVEL",
  path: "PATH",
  networks: "CIDRS",
  switch: "",
};

export function helpText(): string {
  const flags = OPTIONS.map((o) => `${o.flag} ${PLACEHOLDER[o.kind]}`.trimEnd());
  const width = Math.max(...flags.map((f) => f.length));
  const lines = OPTIONS.map((o, i) => {
    const def = shownDefault(o);
    const shown = def === null ? "" : ` [default: ${def}]`;
    return `  ${flags[i]!.padEnd(width)}  ${o.help}${shown}\n  ${"".padEnd(width)}  env ${o.env}`;
  });
  return [
    "parley-relay: a ciphertext-only store-and-forward relay for Parley",
    "",
    "Usage: parley-relay [options]",
    "",
    "Options (flags override environment variables):",
    ...lines,
    `  ${"--help".padEnd(width)}  show this help`,
    `  ${"--version".padEnd(width)}  print the version`,
    "",
    "D is a duration: 30s, 15m, 12h, 7d. SIZE is bytes: 65536, 64KiB, 4MiB.",
    "CIDRS: 10.0.0.0/8,fd00::/8 (addresses and blocks, comma-separated), loopback, or none.",
    "HTTP on the same port: /livez, /readyz, /metrics, /transparency.",
  ].join("\n");
}
