// What the Redis storage (redis.ts) says about Redis's own persistence: what an acknowledged deposit
// survives, and where Redis may keep a deleted message, as read from its settings at start, for the
// transparency statement and the start-up log.
import type { Logger } from "../log.js";
import { type RedisClient, redactRedisMessage } from "./redis-client.js";

/** Redis's persistence settings as read at start; null where they could not be read. */
export interface RedisPersistence {
  readonly version: string | null;
  readonly appendonly: string | null;
  readonly appendfsync: string | null;
  readonly maxmemoryPolicy: string | null;
  /** RDB snapshot rules (`save`): "" means none. */
  readonly save: string | null;
  /** The slow log: commands slower than this many microseconds are kept (negative: none)... */
  readonly slowlogSlowerThan: number | null;
  /** ... the last this many of them (0: none). */
  readonly slowlogMaxLen: number | null;
  /** CONFIG GET was refused (managed Redis often disables it); INFO was used instead. */
  readonly configRefused: boolean;
}

/** Persistence before it was read: everything unknown. */
export const UNREAD: RedisPersistence = {
  version: null,
  appendonly: null,
  appendfsync: null,
  maxmemoryPolicy: null,
  save: null,
  slowlogSlowerThan: null,
  slowlogMaxLen: null,
  configRefused: false,
};

/** Whether Redis writes RDB snapshots: true, false, or null when that could not be read. */
function writesSnapshots(p: RedisPersistence): boolean | null {
  return p.save === null ? null : p.save.trim() !== "";
}

/** Whether Redis's slow log keeps commands (and so their first arguments): null when unknown. */
function keepsSlowLog(p: RedisPersistence): boolean | null {
  if (p.slowlogSlowerThan === null || p.slowlogMaxLen === null) return null;
  return p.slowlogSlowerThan >= 0 && p.slowlogMaxLen > 0;
}

/**
 * Where Redis may keep a message (or its mailbox address) after the relay deleted it, one sentence
 * each, from the persistence settings: for the transparency statement and the start-up warnings.
 * `rewriteSeconds` is how often the relays ask for an AOF rewrite; null: they do not (or may not).
 */
export function describeCopies(p: RedisPersistence, rewriteSeconds: number | null): string[] {
  const out = ["memory: Redis deletes a message at once but does not overwrite the memory it frees"];
  // BGREWRITEAOF writes new files and unlinks the old ones: their disk blocks are freed, never
  // overwritten (nothing like SQLite's secure_delete), so the bytes stay on the disk until reused.
  const unlinked =
    "; a rewrite writes new files and deletes the old ones, whose disk blocks are freed but not overwritten";
  if (p.appendonly === "no") {
    out.push("append-only file: none (appendonly no)");
  } else if (p.appendonly === "yes" && rewriteSeconds !== null) {
    out.push(
      `append-only file: keeps a deleted message until the file is next rewritten, which the relays ask Redis to do every ${rewriteSeconds} s${unlinked}`,
    );
  } else if (p.appendonly === "yes") {
    out.push(
      `append-only file: keeps a deleted message until Redis next rewrites the file of its own accord (the relays do not ask for rewrites, or Redis refuses them)${unlinked}`,
    );
  } else {
    out.push(
      `append-only file: could not be read whether Redis keeps one; if it does, it keeps a deleted message until the file is next rewritten${unlinked}`,
    );
  }
  const snapshots = writesSnapshots(p);
  if (snapshots === false) out.push('snapshots: none (save "")');
  else if (snapshots === true) {
    out.push(
      `snapshots: Redis writes RDB snapshots (dump.rdb, save "${p.save}"), each of which keeps every message stored at that moment until the next snapshot replaces it`,
    );
  } else {
    out.push(
      "snapshots: could not be read whether Redis writes RDB snapshots (dump.rdb), which would keep every message stored at that moment until the next one",
    );
  }
  const slowlog = keepsSlowLog(p);
  if (slowlog === false)
    out.push("slow log: keeps nothing (slowlog-log-slower-than -1 or slowlog-max-len 0)");
  else if (slowlog === true) {
    out.push(
      `slow log: Redis keeps in memory the last ${p.slowlogMaxLen} commands that took longer than ${p.slowlogSlowerThan} µs, with the first 128 bytes of each of their arguments (for the relay's commands: mailbox addresses, message ids and the start of the ciphertext), until newer slow commands push them out`,
    );
  } else {
    out.push(
      "slow log: could not be read whether Redis keeps slow commands with the first 128 bytes of each argument (mailbox addresses, message ids and the start of the ciphertext)",
    );
  }
  return out;
}

/** What an acknowledged deposit survives, in one sentence, from the persistence settings. */
export function describeDurability(p: RedisPersistence): string {
  if (p.appendonly === "no") {
    return "Redis without an append-only file: an acknowledged deposit is in Redis's memory only and is lost if Redis restarts (an RDB snapshot, if configured, keeps what was there at the last snapshot)";
  }
  if (p.appendonly !== "yes") {
    return "Redis, whose persistence settings could not be read: what an acknowledged deposit survives depends on how that Redis is configured";
  }
  switch (p.appendfsync) {
    case "always":
      return "Redis with an append-only file fsynced before every acknowledgement (appendfsync always): an acknowledged deposit survives a crash of Redis or of its machine";
    case "everysec":
      return "Redis with an append-only file fsynced about once a second (appendfsync everysec): an acknowledged deposit is written to the file at once (within two seconds while the disk is slow) and reaches the disk within about a second more, so a crash of Redis or of its machine can lose the last two seconds or so of deposits";
    case "no":
      return "Redis with an append-only file that the operating system flushes when it chooses (appendfsync no): an acknowledged deposit is in the file and survives a crash of Redis, but a power loss or a crash of its machine can lose the last half minute or so of deposits";
    default:
      return "Redis with an append-only file whose fsync policy could not be read: an acknowledged deposit survives a crash of Redis; what a power loss may lose depends on that Redis's settings";
  }
}

/**
 * Reads the persistence settings with CONFIG GET; where that is refused (managed services often
 * rename or forbid CONFIG), INFO says whether AOF is on, and nothing else can be read.
 */
export async function readPersistence(
  client: RedisClient,
  version: string | null,
  log: Logger | undefined,
): Promise<RedisPersistence> {
  const get = async (name: string): Promise<string | null> => {
    const reply = (await client.redis.config("GET", name)) as unknown;
    if (Array.isArray(reply)) return reply[1] === undefined ? null : String(reply[1]);
    const value = (reply as Record<string, unknown> | null)?.[name];
    return value === undefined ? null : String(value);
  };
  const integer = (v: string | null) => (v === null || !/^-?\d+$/.test(v) ? null : Number(v));
  try {
    return {
      version,
      appendonly: await get("appendonly"),
      appendfsync: await get("appendfsync"),
      maxmemoryPolicy: await get("maxmemory-policy"),
      save: await get("save"),
      slowlogSlowerThan: integer(await get("slowlog-log-slower-than")),
      slowlogMaxLen: integer(await get("slowlog-max-len")),
      configRefused: false,
    };
  } catch (e) {
    log?.debug(
      { err: redactRedisMessage((e as Error).message) },
      "CONFIG GET refused; reading INFO persistence",
    );
    const info = await client.run("INFO", () => client.redis.info("persistence"));
    const aof = /^aof_enabled:(\d)/m.exec(info)?.[1];
    return {
      ...UNREAD,
      version,
      appendonly: aof === undefined ? null : aof === "1" ? "yes" : "no",
      configRefused: true,
    };
  }
}

/** Logs the settings read at start, with a warning for each that keeps data or risks losing it. */
export function reportPersistence(
  p: RedisPersistence,
  o: { display: string; durability: string; log: Logger | undefined },
): void {
  const { display, log } = o;
  const fields = {
    redis: display,
    version: p.version,
    appendonly: p.appendonly,
    appendfsync: p.appendfsync,
    maxmemoryPolicy: p.maxmemoryPolicy,
    durability: o.durability,
  };
  if (p.appendonly !== "yes") log?.warn(fields, "redis durability: no append-only file");
  else log?.info(fields, "redis durability");
  if (p.maxmemoryPolicy !== null && p.maxmemoryPolicy !== "noeviction") {
    log?.warn(
      { redis: display, maxmemoryPolicy: p.maxmemoryPolicy },
      "redis may evict stored messages when full: set maxmemory-policy noeviction",
    );
  }
  if (writesSnapshots(p)) {
    log?.warn(
      { redis: display, save: p.save },
      'redis writes RDB snapshots: dump.rdb keeps deleted messages until the next snapshot; set save ""',
    );
  }
  if (keepsSlowLog(p)) {
    log?.warn(
      { redis: display, slowlogSlowerThan: p.slowlogSlowerThan, slowlogMaxLen: p.slowlogMaxLen },
      "redis slow log keeps mailbox addresses and the start of ciphertexts of slow commands; set slowlog-log-slower-than -1",
    );
  }
  if (p.configRefused) {
    log?.warn(
      { redis: display },
      "redis refuses CONFIG GET: whether it writes RDB snapshots or keeps a slow log cannot be read; see /transparency",
    );
  }
}
