// The relay pool: one connection per relay, shared by everything this process does; each relay
// vetted (its transparency statement and welcome against the user's maximum retention) before
// first use; requests whose failures become ClientErrors; subscriptions to my mailboxes. Owns the
// relays table. Live mode (live.ts) keeps the connections up; this module only opens them and
// says when one comes or goes.
import { type DeliverFrame, fromHex, MailboxKey, relayUrlProblem, toHex } from "@parley/protocol";
import { ClientError } from "../errors.js";
import {
  RelayConnection,
  RelayRequestError,
  RelayUnreachableError,
  transparencyUrl,
} from "../relay-connection.js";
import type { RelaysTable } from "../store/relays.js";
import { humanDuration } from "../text.js";
import { type Context, warn } from "./context.js";
import { unreachableReason } from "./deposits.js";

/**
 * A stored message with no receipt is called expired once the relay's retention and one sweep
 * interval (both from its transparency statement) have passed, plus this margin for clocks.
 */
const EXPIRY_SLACK_MS = 5_000;
/** Sweep interval assumed for a relay whose statement does not give one. */
const DEFAULT_SWEEP_SECONDS = 60;
/** A transparency statement is a few kilobytes; anything far larger is not one. */
const MAX_STATEMENT_CHARS = 1 << 20;

/** What the pool tells the rest of the client. */
export interface PoolEvents {
  /** A relay delivered one of my mailbox's messages. */
  deliver(conn: RelayConnection, frame: DeliverFrame): void;
  /** A connection to `url` is open. */
  up(url: string): void;
  /** The connection to `url` ended, `reason` in words. */
  down(url: string, reason: string): void;
  /** The deposit token the relay held for my mailbox `key` (hex of its serialization), if any. */
  lockedToken(key: string): string | undefined;
}

/** Why subscribing on a relay failed, in words; "ok" when it did not. */
export type ListenResult = "ok" | { unreachable: string } | { refused: string };

export class RelayPool {
  private readonly connections = new Map<string, Promise<RelayConnection>>();
  /** Relays with an open connection now. */
  private readonly open = new Set<string>();

  constructor(
    private readonly ctx: Context,
    private readonly table: RelaysTable,
    private readonly events: PoolEvents,
  ) {}

  /** The relay a new mailbox goes on: `flag`, else the default one. */
  relayFor(flag: string | undefined): string {
    const url = flag ?? this.ctx.settings.relay;
    if (!url) {
      throw new ClientError(
        "USAGE",
        "no relay configured: pass --relay URL (or set one with `parley init --relay URL`)",
      );
    }
    const problem = relayUrlProblem(url);
    if (problem) throw new ClientError("USAGE", `relay URL ${JSON.stringify(url)}: ${problem}`);
    return url;
  }

  /**
   * Reads a relay's transparency statement before its first use and refuses one that keeps
   * undelivered messages longer than the user's maximum.
   */
  async vet(url: string): Promise<void> {
    const known = this.table.get(url);
    if (known && known.retentionSeconds <= this.ctx.settings.maxRetentionSeconds) return;
    let statement: unknown;
    try {
      const res = await fetch(transparencyUrl(url), {
        signal: AbortSignal.timeout(5000),
        redirect: "error",
        // A connection of its own, closed after the answer, rather than one from fetch's
        // keep-alive pool: a relay is vetted once, so reuse saves nothing, and a pooled socket the
        // relay closed while this process's event loop was blocked (scrypt, a long transaction)
        // is only noticed after the next request went out on it, which then fails ("other side
        // closed") and would make a relay that is up look unreachable. Not a retry: one attempt
        // keeps a relay that is really down reported promptly.
        headers: { accept: "application/json", connection: "close" },
      });
      if (!res.ok)
        throw new ClientError("RELAY_REFUSED", `relay ${url}: /transparency answered HTTP ${res.status}`);
      const body = await res.text();
      if (body.length > MAX_STATEMENT_CHARS) {
        throw new ClientError(
          "RELAY_REFUSED",
          `relay ${url}: its transparency statement is implausibly large`,
        );
      }
      statement = JSON.parse(body);
    } catch (e) {
      if (e instanceof ClientError) throw e;
      if (e instanceof SyntaxError) {
        throw new ClientError("RELAY_REFUSED", `relay ${url}: its transparency statement is not JSON`);
      }
      throw new ClientError("UNREACHABLE", `cannot reach relay ${url} to read its transparency statement`, {
        cause: e,
      });
    }
    const seconds = (statement as { retention?: { seconds?: unknown } })?.retention?.seconds;
    if (typeof seconds !== "number" || !Number.isSafeInteger(seconds) || seconds <= 0) {
      throw new ClientError(
        "RELAY_REFUSED",
        `relay ${url}: its transparency statement gives no retention time`,
      );
    }
    this.checkRetention(url, seconds);
    const sweep = (statement as { retention?: { sweepIntervalSeconds?: unknown } }).retention
      ?.sweepIntervalSeconds;
    const sweepSeconds =
      typeof sweep === "number" && Number.isSafeInteger(sweep) && sweep > 0 && sweep <= 86400
        ? sweep
        : DEFAULT_SWEEP_SECONDS;
    this.ctx.tx(() =>
      this.table.put({ url, retentionSeconds: seconds, sweepSeconds, checkedAt: Date.now() }),
    );
  }

  private checkRetention(url: string, seconds: number): void {
    if (seconds > this.ctx.settings.maxRetentionSeconds) {
      throw new ClientError(
        "RELAY_REFUSED",
        `relay ${url} keeps undelivered messages for ${humanDuration(seconds)}, longer than your maximum of ${humanDuration(this.ctx.settings.maxRetentionSeconds)} (see --max-retention)`,
      );
    }
  }

  /** The open connection to a relay (vetted first), shared by everything this process does. */
  connect(url: string): Promise<RelayConnection> {
    const existing = this.connections.get(url);
    if (existing) return existing;
    const opening = (async () => {
      await this.vet(url);
      let conn: RelayConnection;
      try {
        conn = await RelayConnection.open(url);
      } catch (e) {
        throw new ClientError("UNREACHABLE", (e as Error).message, { cause: e });
      }
      try {
        this.checkRetention(url, conn.welcome.retentionSeconds);
      } catch (e) {
        conn.close();
        throw e;
      }
      // The welcome gives the retention in force now; expiry reports follow it.
      const known = this.table.get(url);
      if (known && known.retentionSeconds !== conn.welcome.retentionSeconds) {
        this.ctx.tx(() => this.table.put({ ...known, retentionSeconds: conn.welcome.retentionSeconds }));
      }
      conn.on("deliver", (frame) => this.events.deliver(conn, frame));
      conn.on("close", (reason) => {
        if (this.connections.get(url) === opening) this.connections.delete(url);
        this.open.delete(url);
        this.events.down(url, reason);
      });
      this.open.add(url);
      this.events.up(url);
      return conn;
    })();
    this.connections.set(url, opening);
    opening.catch(() => {
      if (this.connections.get(url) === opening) this.connections.delete(url);
    });
    return opening;
  }

  /** Is a connection to `url` open now? */
  isOpen(url: string): boolean {
    return this.open.has(url);
  }

  /** Relays with an open connection now. */
  openRelays(): string[] {
    return [...this.open];
  }

  /** Closes every connection. */
  disconnect(): void {
    for (const c of this.connections.values()) void c.then((conn) => conn.close()).catch(() => {});
    this.connections.clear();
    this.open.clear();
  }

  /** The retention a relay announced, in seconds, if it was ever vetted. */
  retentionSeconds(url: string): number | undefined {
    return this.table.get(url)?.retentionSeconds;
  }

  /** How long after a relay stored a message it is surely gone from there. */
  expiryDelayMs(url: string): number {
    const r = this.table.get(url);
    const retention = r?.retentionSeconds ?? this.ctx.settings.maxRetentionSeconds;
    return (retention + (r?.sweepSeconds ?? DEFAULT_SWEEP_SECONDS)) * 1000 + EXPIRY_SLACK_MS;
  }

  /** Does a relay request, turning transport failures and relay errors into ClientErrors. */
  async request<T>(relay: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof RelayUnreachableError) throw new ClientError("UNREACHABLE", e.message, { cause: e });
      if (e instanceof RelayRequestError) {
        throw new ClientError("RELAY_REFUSED", `relay ${relay} refused: ${e.code} (${e.message})`, {
          cause: e,
        });
      }
      throw e;
    }
  }

  /**
   * Subscribes to one of my mailboxes. A relay that lost it (wiped, or a memory relay restarted)
   * gets it back: the address derives from the key, so re-creating it restores the same mailbox.
   */
  async subscribe(conn: RelayConnection, key: MailboxKey): Promise<void> {
    try {
      await conn.subscribe(key);
    } catch (e) {
      if (!(e instanceof RelayRequestError && e.code === "UNKNOWN_MAILBOX")) throw e;
      await conn.createMailbox(key);
      // A mailbox that had a deposit token gets it again: re-created, it would take anyone's.
      const token = this.events.lockedToken(toHex(key.serialize()));
      if (token) await conn.setDepositToken(key, fromHex(token));
      await conn.subscribe(key);
      warn(this.ctx, `relay ${conn.url} had lost one of your mailboxes; it was re-created`);
    }
  }

  /** Subscribes to my mailboxes on one relay; says why not in words. */
  async listenOn(relay: string, keys: MailboxKey[]): Promise<ListenResult> {
    try {
      const conn = await this.connect(relay);
      for (const key of keys) {
        try {
          await this.subscribe(conn, key);
        } catch (e) {
          if (!(e instanceof RelayRequestError)) throw e;
          return { refused: `relay ${relay} refused a subscription: ${e.code} (${e.message})` };
        }
      }
      return "ok";
    } catch (e) {
      if (e instanceof ClientError && e.code === "RELAY_REFUSED") return { refused: e.message };
      if (e instanceof ClientError || e instanceof RelayUnreachableError) {
        return { unreachable: unreachableReason(e) };
      }
      throw e;
    }
  }

  /**
   * Deletes one of my mailboxes (`key`: hex of its MailboxKey) on its relay, best effort: if the
   * relay cannot be reached, it drops what waits there at its retention anyway.
   */
  async forgetMailbox(relay: string, key: string): Promise<void> {
    try {
      const conn = await this.connect(relay);
      await conn.deleteMailbox(MailboxKey.deserialize(fromHex(key)));
    } catch {
      // unreachable or already gone: nothing is waiting there any more either way
    }
  }
}
