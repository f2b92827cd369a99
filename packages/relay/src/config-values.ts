// One option's value from its text, for each kind of option, and the units and formats shared with
// the help and the error messages. The parsers return null or a problem rather than throwing.
import { isIP } from "node:net";
import type { LogLevel, RedisTarget } from "./config.js";
import type { Option } from "./config-options.js";

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

export function parseValue(o: Option, raw: string, source: string): { value?: unknown; problem?: string } {
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
