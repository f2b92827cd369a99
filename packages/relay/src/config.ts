// Relay configuration: one explicit defaults object, overridden by environment variables, then by
// command-line flags. Every problem is collected and reported at once, one clear line each.
// The options themselves are a table (config-options.ts), their values parsed by kind
// (config-values.ts); the help is drawn from the table (config-help.ts).
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { MAX_ENVELOPE_LENGTH, SEALED_CHUNK_BYTES } from "@parley/protocol";
import { OPTIONS, type Option } from "./config-options.js";
import { formatDuration, formatSize, parseValue } from "./config-values.js";

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
  problems.push(...validate(config));
  // --help and --version answer even when the rest of the configuration is wrong.
  if (problems.length > 0 && !help && !version) throw new ConfigError(problems);
  return { config, help, version };
}

/** What is wrong with a configuration as a whole: bounds, and options that must agree. */
function validate(config: RelayConfig): string[] {
  const problems: string[] = [];
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
  return problems;
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
