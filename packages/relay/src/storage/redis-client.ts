// The Redis storage's connections (redis.ts): one for commands and, for a storage that watches the
// deposit channel, one subscribed to it. Both fail fast rather than wait (no offline queue, bounded
// timeouts), reconnect for ever, and log each loss and recovery once; every command goes through
// `run`, so that its errors carry nothing of the data it was sent with.

import { Redis, type RedisOptions } from "ioredis";
import type { RedisTarget } from "../config.js";
import { redisDisplay } from "../config-values.js";
import type { Logger } from "../log.js";
import { type Arg, SCRIPTS, type ScriptName } from "./redis-scripts.js";
import { StorageUnavailableError } from "./types.js";

/** Replies that mean "not now" (loading, out of memory, refusing writes, auth), not a bug here. */
const UNAVAILABLE_REPLY =
  /^(LOADING|BUSY|MISCONF|READONLY|MASTERDOWN|TRYAGAIN|OOM|NOAUTH|WRONGPASS|NOPERM)\b/;

/**
 * An error's message without what could identify a mailbox or hold ciphertext: the arguments Redis
 * echoes in some replies ("with args beginning with: ..."), and any long run of hex (a key name).
 */
export function redactRedisMessage(message: string): string {
  return message
    .replace(/,? with args beginning with:[\s\S]*$/i, "")
    .replace(/[0-9a-f]{24,}/gi, "[redacted]");
}

/** What ioredis says when a command meets a connection that is down (no offline queue). */
const OFFLINE_REFUSAL = /Stream isn't writeable and enableOfflineQueue options is false/;

/**
 * The error a storage method throws for a failed command: always a fresh one carrying only the
 * command's name and the redacted message. ioredis attaches the command (key names, with mailbox
 * addresses, and ciphertext buffers) to its errors; none of that may reach a log.
 */
function storageError(e: unknown, command: string): Error {
  if (e instanceof StorageUnavailableError) return e;
  const message = `Redis ${command}: ${redactRedisMessage(e instanceof Error ? e.message : String(e))}`;
  // A reply error is Redis refusing a command: a bug in a script or a key of the wrong type,
  // except for the few replies that mean the server cannot serve anyone right now.
  if (e instanceof Error && e.name === "ReplyError" && !UNAVAILABLE_REPLY.test(e.message)) {
    return new Error(message);
  }
  return new StorageUnavailableError(message);
}

export interface RedisClientOptions {
  readonly target: RedisTarget;
  readonly logger: Logger | undefined;
  /** A command, or a connection attempt, fails after this many ms. */
  readonly timeoutMs: number;
  /** The commands connection is back after a loss: commands failed while it was down. */
  readonly restored: () => void;
}

export class RedisClient {
  /** host:port/db, never the password: for logs and messages. */
  readonly display: string;
  /** The commands connection. */
  readonly redis: Redis;
  /** The notifications connection, once `subscriber()` made it. */
  private sub: Redis | undefined;
  private readonly options: RedisOptions;
  private readonly log: Logger | undefined;
  private readonly timeoutMs: number;
  private readonly firstReady: Promise<void>;
  private everReady = false;
  private closed = false;
  private readonly timers: NodeJS.Timeout[] = [];
  /** When each connection was lost (ms since the epoch), while it is down. */
  private readonly downSince = new Map<string, number>();
  /** The last connection error, to say why the first connection did not come. */
  private lastError: string | undefined;

  constructor(private readonly o: RedisClientOptions) {
    const t = o.target;
    this.display = redisDisplay(t);
    this.log = o.logger;
    this.timeoutMs = o.timeoutMs;
    this.options = {
      host: t.host,
      port: t.port,
      db: t.db,
      ...(t.username !== null ? { username: t.username } : {}),
      ...(t.password !== null ? { password: t.password } : {}),
      ...(t.tls ? { tls: {} } : {}),
      connectionName: "parley-relay",
      // Fail, never wait: no queue while disconnected, and a command in flight when the connection
      // drops is rejected at once rather than sent again after a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      // Bounded time: a command without a reply fails, and a socket that sent nothing back for that
      // long is closed (which starts a reconnect); so does a connection attempt.
      commandTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
      // Reconnect for ever, quickly: 100 ms, doubling to 2 s, with jitter.
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times - 1, 5), 2000) + Math.random() * 100,
      scripts: SCRIPTS,
      enableAutoPipelining: true,
    };
    this.redis = new Redis(this.options);
    this.firstReady = new Promise((resolve) => this.redis.once("ready", () => resolve()));
    this.follow(this.redis, "commands");
  }

  /**
   * A connection of its own for the deposit channel (a subscribed connection can send nothing
   * else), followed like the first.
   */
  subscriber(): Redis {
    const sub = new Redis({ ...this.options, connectionName: "parley-relay-notifications" });
    this.sub = sub;
    this.follow(sub, "notifications");
    // Nothing else is sent on this connection: a ping now and then finds a dead one (socketTimeout).
    const timer = setInterval(() => {
      if (sub.status === "ready") sub.ping().catch(() => {});
    }, this.timeoutMs);
    timer.unref();
    this.timers.push(timer);
    return sub;
  }

  /** Logs a connection's losses and recoveries once each; a recovery triggers a resync. */
  private follow(client: Redis, connection: "commands" | "notifications"): void {
    const lost = (err?: Error) => {
      if (err) this.lastError = err.message;
      if (this.closed || this.downSince.has(connection)) {
        if (err) this.log?.debug({ connection, err: err.message }, "redis still unavailable");
        return;
      }
      this.downSince.set(connection, Date.now());
      this.log?.warn(
        { redis: this.display, connection, err: err?.message },
        this.everReady ? "redis connection lost" : "redis unreachable",
      );
    };
    client.on("error", (err: Error) => lost(err));
    client.on("close", () => lost());
    client.on("ready", () => {
      if (connection === "commands") this.everReady = true;
      const since = this.downSince.get(connection);
      this.downSince.delete(connection);
      if (since === undefined) return;
      this.log?.info(
        { redis: this.display, connection, downSeconds: (Date.now() - since) / 1000 },
        "redis connection restored",
      );
      // Commands failed while it was down (deliveries among them): read every mailbox again.
      if (connection === "commands") this.o.restored();
    });
  }

  /** Resolves once commands can be sent; rejects at once when the connection is down. */
  private async usable(): Promise<void> {
    if (this.closed) throw new StorageUnavailableError("storage is closed");
    if (this.redis.status === "ready") return;
    if (this.everReady) throw new StorageUnavailableError(`Redis at ${this.display} is not connected`);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.firstReady,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new StorageUnavailableError(
                  `no connection to Redis at ${this.display} within ${this.timeoutMs / 1000} s${this.lastError ? ` (${this.lastError})` : ""}`,
                ),
              ),
            this.timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs one command (named for errors); every failure is rethrown through `storageError`. */
  async run<T>(command: string, op: () => Promise<T>): Promise<T> {
    await this.usable();
    try {
      return await op();
    } catch (e) {
      // The connection dropped between the check above and the write: ioredis's offline refusal,
      // the same condition as a connection already known to be down.
      if (e instanceof Error && OFFLINE_REFUSAL.test(e.message))
        throw new StorageUnavailableError(`Redis at ${this.display} is not connected`);
      throw storageError(e, command);
    }
  }

  /** Runs one of the scripts (redis-scripts.ts) through `run`. */
  script(name: ScriptName, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return this.run(name, () => {
      const fn = (this.redis as unknown as Record<ScriptName, (...a: Arg[]) => Promise<unknown>>)[name];
      // ioredis sends a Buffer as bytes but would turn any other Uint8Array into text.
      const wire = args.map((a) =>
        a instanceof Uint8Array && !Buffer.isBuffer(a)
          ? Buffer.from(a.buffer, a.byteOffset, a.byteLength)
          : a,
      );
      return fn.call(this.redis, ...keys, ...wire);
    });
  }

  /** Whether both connections are up and Redis answers a ping (for /readyz); never rejects. */
  async ready(): Promise<boolean> {
    if (this.closed || this.redis.status !== "ready") return false;
    if (this.sub && this.sub.status !== "ready") return false;
    try {
      await this.redis.ping();
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.all(
      [this.redis, this.sub].map(async (c) => {
        if (!c) return;
        try {
          await c.quit();
        } catch {
          c.disconnect();
        }
      }),
    );
  }
}
