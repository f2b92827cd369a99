// Redis (or Valkey) storage, shared by several relays. Every change that touches more than one key
// is one Lua script (redis-scripts.ts), so the quota and duplicate checks hold across relays; each
// deposit is published on one channel, so every relay hears of it at once and pushes it to its own
// subscribers without polling.
//
//   redis.ts              the store: its keys, its settings and totals, the deposit channel
//   redis-messages.ts     mailboxes and messages: deposit, pending, ack, the sweep
//   redis-blobs.ts        blobs and their chunks
//   redis-scripts.ts      the Lua scripts
//   redis-client.ts       the connections: fail fast, reconnect, errors that carry no data
//   redis-persistence.ts  what Redis's own persistence keeps, from its settings
//
// Keys (P is the prefix, "parley:v1:" by default; A is the mailbox address in hex):
//   P seq          string  the arrival counter: `seq` of the last stored message, all mailboxes
//   P stats        hash    mailboxes, messages, bytes: the totals, kept by the scripts
//   P due          zset    A -> the earliest expiry time in that mailbox (what the sweep visits)
//   P mailbox:A    hash    owner (the 32-byte owner key), messages, bytes (the quota counters),
//                          token (the deposit-token hash, once its owner set one)
//   P messages:A   hash    relay id (16 bytes) -> arrival (u64 BE, ms) | expiry (u64 BE, ms) | ciphertext
//   P queue:A      zset    relay id -> seq: arrival order, and the cursor of `pending`
//   P expiry:A     zset    relay id -> expiry time (ms), for the sweep
//   P seen:A       zset    client message id -> expiry time: remembered until then, even after an ack
//   P digests:A    hash    client message id -> the first 16 bytes of its ciphertext's SHA-256
//                          (absent for ids remembered by 0.1.0: any ciphertext is then a retry)
//   P aof-rewrite  string  a lease (SET NX EX), so that one relay at a time asks for an AOF rewrite
//   P blob:B       hash    write (write-token hash), count, size, written, wbytes (chunk bytes
//                          stored), expires (ms), readers (the read-token hashes, 32 bytes each),
//                          done (a byte per reader: 1 once it completed); B is the blob id in hex
//   P chunk:B:I    string  chunk I of blob B, sealed by the client; it expires with its blob (PX,
//                          the time left by the relay's clock), so that its bytes go at the blob's
//                          expiry even if no relay sweeps
//   P blobs        zset    B -> expiry time (ms), for the sweep
// `stats` also holds blobs, blobsealed (declared sizes) and blobbytes (chunk bytes stored).
// Channel P deposits: "A:<seq>:<relay node>" after every stored message; no ciphertext.
//
// `seq` can go back: a Redis that crashed with appendfsync everysec or no, or was restored from an
// older snapshot, comes back with the counter (and the data) of a moment ago. A deposit never gets
// a seq at or below one already in its mailbox's queue (the script bumps the counter past it), and a
// notification that is not above the last one heard tells the relay to read every mailbox again.
//
// Not a Stream per mailbox, though that looks the natural fit: XDEL only marks an entry deleted,
// and its bytes stay in the stream's node (and so in every RDB snapshot, AOF rewrite, DUMP and
// replica) until every other entry of that node is deleted too. HDEL removes the value itself.
//
// One Redis or Valkey primary (>= 6.2), not Cluster (`seq`, `due` and `stats` are global keys),
// and not a replicated set with failover (replication is asynchronous: a failover can lose
// acknowledged deposits).
import { randomBytes } from "node:crypto";
import { fromHex } from "@parley/protocol";
import type { RedisTarget } from "../config.js";
import type { Logger } from "../log.js";
import { ComposedStorage } from "./composed.js";
import { RedisBlobs } from "./redis-blobs.js";
import { RedisClient, redactRedisMessage } from "./redis-client.js";
import { type GlobalKeys, globalKeys, RedisMessages } from "./redis-messages.js";
import {
  describeCopies,
  describeDurability,
  type RedisPersistence,
  readPersistence,
  reportPersistence,
  UNREAD,
} from "./redis-persistence.js";
import {
  ACCOUNTED_BLOB_BYTES,
  ACCOUNTED_MAILBOX_BYTES,
  ACCOUNTED_MESSAGE_BYTES,
  defaultMaxMailboxes,
  type Storage,
  type StorageCapacity,
  type StorageDisclosure,
  type StorageEvents,
  type StorageStats,
} from "./types.js";

export const DEFAULT_PREFIX = "parley:v1:";
/** A notification: mailbox address (hex), seq, and the relay node that stored it. */
const NOTIFICATION = /^((?:[0-9a-f]{2}){1,64}):([1-9][0-9]{0,15}):([0-9a-f]{16})$/;
/** The oldest server with every command used here (ZADD LT). */
const MIN_VERSION = [6, 2] as const;

export interface RedisStorageOptions {
  readonly target: RedisTarget;
  readonly logger?: Logger;
  /** A command, or a connection attempt, fails after this many ms. Default 5000. */
  readonly timeoutMs?: number;
  /** Every key and the channel start with this. Default "parley:v1:". */
  readonly prefix?: string;
  /** How often (ms) the relays sharing this Redis ask it to rewrite its AOF. 0 (default): never. */
  readonly rewriteIntervalMs?: number;
  /** `--max-storage`: default REDIS_DEFAULT_MAX_BYTES. Every relay on one Redis should say the same. */
  readonly maxBytes?: number;
  /** `--max-mailboxes`: default `defaultMaxMailboxes(maxBytes)`. */
  readonly maxMailboxes?: number;
}

/** `--max-storage` for a Redis storage when it is not set (set Redis's maxmemory above it). */
export const REDIS_DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;

export class RedisStorage extends ComposedStorage implements Storage {
  readonly kind = "redis";
  /** host:port/db, never the password: for logs and messages. */
  readonly display: string;
  /** A random id for this relay process, so that it can ignore its own notifications. */
  readonly node = randomBytes(8).toString("hex");
  durability = describeDurability(UNREAD);
  readonly capacity: StorageCapacity;
  persistence: RedisPersistence | null = null;
  /** Notifications on the channel that were not of the expected shape, and so ignored. */
  ignoredNotifications = 0;
  private readonly client: RedisClient;
  protected readonly messages: RedisMessages;
  protected readonly blobs: RedisBlobs;
  private readonly global: GlobalKeys;
  private events: StorageEvents | undefined;
  private readonly log: Logger | undefined;
  private readonly prefix: string;
  private readonly rewriteIntervalMs: number;
  private rewriteTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private rewriteRefused = false;
  /** The seq of the last notification heard (this relay's own included) since (re)subscribing. */
  private lastHeardSeq = 0;

  constructor(options: RedisStorageOptions) {
    super();
    this.log = options.logger;
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.rewriteIntervalMs = options.rewriteIntervalMs ?? 0;
    const maxBytes = options.maxBytes ?? REDIS_DEFAULT_MAX_BYTES;
    this.capacity = { maxBytes, maxMailboxes: options.maxMailboxes ?? defaultMaxMailboxes(maxBytes) };
    this.client = new RedisClient({
      target: options.target,
      logger: this.log,
      timeoutMs: options.timeoutMs ?? 5000,
      restored: () => this.events?.resync(),
    });
    this.display = this.client.display;
    this.global = globalKeys(this.prefix);
    this.messages = new RedisMessages({
      client: this.client,
      prefix: this.prefix,
      global: this.global,
      capacity: this.capacity,
      node: this.node,
      log: this.log,
    });
    this.blobs = new RedisBlobs({
      client: this.client,
      prefix: this.prefix,
      stats: this.global.stats,
      maxBytes,
    });
  }

  /**
   * Waits for the first connection (at most the timeout), checks the server version, and reads
   * and logs the persistence settings. The CLI calls it before serving; without it, the first
   * command waits for the connection the same way.
   */
  async open(): Promise<void> {
    const server = await this.client.run("INFO", () => this.client.redis.info("server"));
    const version = /^redis_version:(\S+)/m.exec(server)?.[1] ?? null;
    const [major = 0, minor = 0] = (version ?? "0.0").split(".").map(Number);
    if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) {
      throw new Error(
        `Redis ${version ?? "of unknown version"} at ${this.display}: parley-relay needs ${MIN_VERSION.join(".")} or later`,
      );
    }
    const p = await readPersistence(this.client, version, this.log);
    this.persistence = p;
    this.durability = describeDurability(p);
    reportPersistence(p, { display: this.display, durability: this.durability, log: this.log });
    if (this.rewriteIntervalMs > 0 && p.appendonly === "yes") {
      this.rewriteTimer = setInterval(() => void this.rewrite(), this.rewriteIntervalMs);
      this.rewriteTimer.unref();
    }
  }

  /** Seconds between the AOF rewrites this relay asks for; null when it asks for none. */
  get appendOnlyFileRewriteSeconds(): number | null {
    const asks = this.rewriteIntervalMs > 0 && this.persistence?.appendonly === "yes" && !this.rewriteRefused;
    return asks ? this.rewriteIntervalMs / 1000 : null;
  }

  /** For the transparency statement: how deletion works here, from the settings read at start. */
  disclosure(): StorageDisclosure {
    const rewriteSeconds = this.appendOnlyFileRewriteSeconds;
    return {
      deletion:
        "messages after acknowledgement or expiry, as far as Redis can be asked: they are deleted from Redis at once, but Redis may keep copies for a while (see storageCopies)",
      appendOnlyFileRewriteSeconds: rewriteSeconds,
      copies: describeCopies(this.persistence ?? UNREAD, rewriteSeconds),
    };
  }

  /**
   * Asks Redis to rewrite its append-only file, so that the ciphertext of deleted messages leaves
   * its files (Redis writes new ones and unlinks the old: the disk blocks are freed, not
   * overwritten); a lease makes one relay at a time do it, once per interval.
   */
  private async rewrite(): Promise<void> {
    if (this.rewriteRefused || this.closed || this.client.redis.status !== "ready") return;
    try {
      const seconds = Math.max(1, Math.floor(this.rewriteIntervalMs / 1000) - 1);
      const lease = await this.client.redis.set(`${this.prefix}aof-rewrite`, this.node, "EX", seconds, "NX");
      if (lease !== "OK") return;
      await this.client.redis.bgrewriteaof();
      this.log?.info({ redis: this.display }, "redis append-only file rewrite started");
    } catch (e) {
      const message = redactRedisMessage((e as Error).message);
      if (/already in progress/i.test(message)) return;
      if ((e as Error).name === "ReplyError" && /unknown command|NOPERM/i.test(message)) {
        this.rewriteRefused = true;
        this.log?.warn(
          { redis: this.display, err: message },
          "redis refuses BGREWRITEAOF: deleted ciphertext stays in its append-only file until Redis rewrites it itself",
        );
        return;
      }
      this.log?.debug({ err: message }, "redis append-only file rewrite not started");
    }
  }

  async stats(): Promise<StorageStats> {
    const [mailboxes, messages, bytes, blobs, blobSealed, blobBytes] = await this.client.run("HMGET", () =>
      this.client.redis.hmget(
        this.global.stats,
        "mailboxes",
        "messages",
        "bytes",
        "blobs",
        "blobsealed",
        "blobbytes",
      ),
    );
    const totals = {
      mailboxes: Number(mailboxes ?? 0),
      messages: Number(messages ?? 0),
      bytes: Number(bytes ?? 0),
      blobs: Number(blobs ?? 0),
      blobBytes: Number(blobBytes ?? 0),
      blobReservedBytes: Number(blobSealed ?? 0),
    };
    const countedBytes =
      totals.bytes +
      totals.messages * ACCOUNTED_MESSAGE_BYTES +
      totals.mailboxes * ACCOUNTED_MAILBOX_BYTES +
      totals.blobReservedBytes +
      totals.blobs * ACCOUNTED_BLOB_BYTES;
    return { ...totals, countedBytes };
  }

  ready(): Promise<boolean> {
    return this.client.ready();
  }

  /**
   * Subscribes, on a connection of its own, to the deposit channel. After every (re)subscription
   * `events.resync()` runs, since deposits published while it was down were not heard.
   */
  watch(events: StorageEvents): void {
    if (this.events) throw new Error("watch() was already called");
    this.events = events;
    const sub = this.client.subscriber();
    const channel = this.global.channel;
    sub.on("ready", () => {
      this.lastHeardSeq = 0;
      sub.subscribe(channel).then(
        () => this.events?.resync(),
        (e: Error) => {
          this.log?.debug({ err: e.message }, "redis subscribe failed; reconnecting");
          sub.disconnect(true);
        },
      );
    });
    sub.on("message", (_channel: string, message: string) => this.heard(message));
  }

  /**
   * One notification, "A:<seq>:<node>". Anything else is ignored (counted, and logged without its
   * content): this runs inside ioredis's socket handler, where a throw would end the process.
   */
  private heard(message: string): void {
    const m = NOTIFICATION.exec(message);
    const seq = m ? Number(m[2]) : Number.NaN;
    if (!m || !Number.isSafeInteger(seq)) {
      if (this.ignoredNotifications++ === 0 || this.ignoredNotifications % 1000 === 0) {
        this.log?.warn(
          { ignored: this.ignoredNotifications, length: message.length },
          "redis notification of an unexpected shape ignored",
        );
      }
      return;
    }
    // Redis publishes from inside the deposit script, so notifications arrive in seq order: one
    // that is not above the last means the counter went back (Redis lost its last writes, or was
    // restored from an older copy), and every subscriber's cursor may be past new messages.
    const wentBack = seq <= this.lastHeardSeq;
    this.lastHeardSeq = seq;
    if (wentBack) {
      this.log?.warn({ redis: this.display }, "redis arrival counter went back: reading every mailbox again");
      this.events?.resync();
    }
    if (m[3] !== this.node) this.events?.deposited(fromHex(m[1]!), seq);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.rewriteTimer);
    await this.client.close();
  }
}
