// Live mode: what a long-running process (the terminal UI) adds to the relay pool. Every relay in
// use has a link with a state ("relay" events, status()): a relay that is down is probed about
// every second and reconnected once it answers, the personal relay is restarted if its process
// died, the outbox is retried as entries fall due, and uploads that stopped part-way are continued
// (at the start, when a relay is back, and now and then). Outside live mode a relay is connected
// when a command needs it, and its state is only reported.
import type { MailboxKey } from "@parley/protocol";
import { ensureLocalRelay, isLocalRelayUrl, localRelayPid } from "../local-relay.js";
import { isLoopbackRelay, probeRelay } from "../relay-connection.js";
import { type Context, warn } from "./context.js";
import type { RelayPool } from "./relays.js";
import type { FlushReport, LiveOptions, RelayLinkState, RelayState } from "./types.js";

/** ±20 % */
const jittered = (ms: number) => Math.round(ms * (0.8 + Math.random() * 0.4));

/**
 * A relay that is down is probed (one TCP connection, opened and closed) every 0.64–0.96 s, so a
 * relay that comes back is noticed within a second; the WebSocket and its hello follow only once
 * its port answers. First probe after a connection drops: at once, nearly.
 */
const PROBE_MS = 800;
const FIRST_RETRY_MS = 150;

/**
 * The back-off of full attempts that fail although the relay's port takes TCP connections (a
 * proxy answering for a relay that is down, a relay refusing the hello): 1 s doubling to 1 s on
 * this machine, to 15 s for a relay elsewhere; a relay refused for its policy (retention) is asked
 * again after a minute.
 */
function attemptBackoffMs(url: string, failures: number): number {
  const cap = isLoopbackRelay(url) ? 1000 : 15_000;
  return jittered(Math.min(cap, 1000 * 2 ** Math.max(0, failures - 1)));
}
const REFUSED_RETRY_MS = 60_000;
/** Personal relay restarts that fail are tried again after 2 s doubling to a minute. */
const reviveBackoffMs = (failures: number) => Math.min(60_000, 2000 * 2 ** Math.max(0, failures - 1));
/** A personal relay whose process runs but whose port stays closed this long is started again. */
const REVIVE_GRACE_MS = 15_000;

/** A relay's connection in live mode, kept up by retry(). */
interface Link {
  state: RelayLinkState;
  nextRetryAt: number | null;
  lastError: string | null;
  /** Since when it is not connected (ms), or null. */
  offlineSince: number | null;
  /** Full attempts in a row that failed although the relay's port took a TCP connection. */
  failures: number;
  /** No full attempt before this (ms): the back-off after such failures. */
  notBefore: number;
  /** Failed restarts of the personal relay in a row, and the earliest next one (ms). */
  revivals: number;
  reviveNotBefore: number;
  timer: NodeJS.Timeout | null;
  /** retry() is running. */
  busy: boolean;
}

interface State {
  readonly timers: Set<NodeJS.Timeout>;
  readonly links: Map<string, Link>;
  /** The environment that locates the personal relay (its port and data directory). */
  readonly env: NodeJS.ProcessEnv;
  stopped: boolean;
}

/** What live mode drives in the rest of the client. */
export interface LiveDeps {
  /** My mailboxes by relay, and every relay in use. */
  mailboxes(): Map<string, MailboxKey[]>;
  relaysInUse(): Set<string>;
  /** Delivers the outbox (`force`: ignoring back-off); `flushing()`: a flush is under way. */
  flush(options?: { force?: boolean }): Promise<FlushReport>;
  flushing(): boolean;
  /** Once a minute: expired messages marked, old mailboxes deleted. */
  maintain(): void;
  /** Subscriptions were (re)made: deliveries start from now. */
  listened(): void;
  /** Continues pending uploads in the background: `now`, or when a look is due (upload-resume.ts). */
  resumeUploads(now: boolean): void;
}

export class Live {
  private live: State | null = null;

  constructor(
    private readonly ctx: Context,
    private readonly pool: RelayPool,
    private readonly deps: LiveDeps,
  ) {}

  /** Is live mode on? */
  get on(): boolean {
    return this.live !== null;
  }

  /** See Client.start(). */
  async start(options: LiveOptions = {}): Promise<void> {
    if (this.live) return;
    const live: State = {
      timers: new Set(),
      links: new Map(),
      env: options.env ?? process.env,
      stopped: false,
    };
    this.live = live;
    for (const url of this.deps.relaysInUse()) {
      if (!this.pool.isOpen(url)) this.setLink(url, { state: "connecting", nextRetryAt: null });
    }
    await this.deps.flush({ force: true });
    const listened = await this.listen();
    for (const r of listened.refused) warn(this.ctx, r);
    this.deps.resumeUploads(true);
    const tick = setInterval(() => {
      this.deps.resumeUploads(false);
      if (this.deps.flushing()) return;
      void this.deps.flush().catch((e: unknown) => warn(this.ctx, `outbox: ${(e as Error).message}`));
    }, 1000);
    const expiry = setInterval(() => this.deps.maintain(), 60_000);
    live.timers.add(tick);
    live.timers.add(expiry);
  }

  /** Ends live mode's timers and reconnections; false when it was not on. */
  end(): boolean {
    const live = this.live;
    if (!live) return false;
    live.stopped = true;
    for (const t of live.timers) clearTimeout(t);
    for (const link of live.links.values()) if (link.timer) clearTimeout(link.timer);
    this.live = null;
    return true;
  }

  /** See Client.listen(). */
  async listen(): Promise<FlushReport> {
    const unreachable: string[] = [];
    const refused: string[] = [];
    const boxes = this.deps.mailboxes();
    if (this.live) for (const url of this.deps.relaysInUse()) if (!boxes.has(url)) boxes.set(url, []);
    await Promise.all(
      [...boxes].map(async ([relay, keys]) => {
        const result = await this.pool.listenOn(relay, keys);
        if (result === "ok") return;
        if ("unreachable" in result) {
          unreachable.push(relay);
          if (this.live && !this.live.stopped) this.watchRelay(relay, result.unreachable);
        } else refused.push(result.refused);
      }),
    );
    this.deps.listened();
    return { unreachable, refused };
  }

  /** One relay's state as this process sees it now. */
  relayState(url: string): RelayState {
    if (this.pool.isOpen(url)) return { url, state: "connected", nextRetryAt: null, lastError: null };
    const link = this.live?.links.get(url);
    if (!link) return { url, state: "offline", nextRetryAt: null, lastError: null };
    return { url, state: link.state, nextRetryAt: link.nextRetryAt, lastError: link.lastError };
  }

  // ------------------------------------------------------------ what the pool and outbox say

  /** A connection opened (RelayPool). */
  up(url: string): void {
    if (this.live && !this.live.stopped) this.linkUp(url);
    else this.ctx.emitter.emit("relay", { url, state: "connected", nextRetryAt: null, lastError: null });
  }

  /** A connection ended (RelayPool). */
  down(url: string, reason: string): void {
    if (this.live && !this.live.stopped) this.linkDown(url, reason, FIRST_RETRY_MS);
    else this.ctx.emitter.emit("relay", { url, state: "offline", nextRetryAt: null, lastError: reason });
  }

  /** In live mode a relay that is down is left to its link, which flushes once it is back. */
  isDown(url: string): boolean {
    return this.live !== null && this.live.links.get(url)?.state === "offline";
  }

  /** A deposit found `url` unreachable: in live mode, its link starts watching it. */
  unreachable(url: string, why: string): void {
    if (this.live && !this.live.stopped && !this.pool.isOpen(url)) this.watchRelay(url, why);
  }

  // ------------------------------------------------------------------------------- links

  private setLink(url: string, patch: Partial<Omit<Link, "timer" | "busy">>): Link | null {
    const live = this.live;
    if (!live || live.stopped) return null;
    let link = live.links.get(url);
    const before = link
      ? { state: link.state, nextRetryAt: link.nextRetryAt, lastError: link.lastError }
      : null;
    if (!link) {
      link = {
        state: "offline",
        nextRetryAt: null,
        lastError: null,
        offlineSince: Date.now(),
        failures: 0,
        notBefore: 0,
        revivals: 0,
        reviveNotBefore: 0,
        timer: null,
        busy: false,
      };
      live.links.set(url, link);
    }
    Object.assign(link, patch);
    if (
      !before ||
      before.state !== link.state ||
      before.nextRetryAt !== link.nextRetryAt ||
      before.lastError !== link.lastError
    ) {
      this.ctx.emitter.emit("relay", this.relayState(url));
    }
    return link;
  }

  private linkUp(url: string): void {
    const link = this.setLink(url, {
      state: "connected",
      nextRetryAt: null,
      lastError: null,
      offlineSince: null,
      failures: 0,
      notBefore: 0,
      revivals: 0,
      reviveNotBefore: 0,
    });
    if (link?.timer) {
      clearTimeout(link.timer);
      link.timer = null;
    }
  }

  /** The relay is not connected: say why and try again after `delayMs`. */
  private linkDown(url: string, why: string, delayMs: number): void {
    const current = this.live?.links.get(url);
    const link = this.setLink(url, {
      state: "offline",
      lastError: why,
      offlineSince: current?.offlineSince ?? Date.now(),
    });
    if (link) this.scheduleRetry(url, link, delayMs);
  }

  /** Starts watching a relay found unreachable, unless that is already under way. */
  private watchRelay(url: string, why: string): void {
    const link = this.live?.links.get(url);
    if (link?.busy) return;
    if (link?.timer) {
      this.setLink(url, { lastError: why });
      return;
    }
    this.linkDown(url, why, jittered(PROBE_MS));
  }

  private scheduleRetry(url: string, link: Link, delayMs: number): void {
    const live = this.live;
    if (!live || live.stopped) return;
    if (link.timer) clearTimeout(link.timer);
    const at = Date.now() + delayMs;
    this.setLink(url, { nextRetryAt: at });
    link.timer = setTimeout(() => {
      link.timer = null;
      link.busy = true;
      void this.retry(url)
        .catch((e: unknown) => {
          warn(this.ctx, `relay ${url}: ${(e as Error).message}`);
          this.linkDown(url, (e as Error).message, jittered(PROBE_MS));
        })
        .finally(() => {
          link.busy = false;
        });
    }, delayMs);
  }

  /**
   * One reconnection attempt: a TCP probe first (a relay that is down costs one refused
   * connection); the personal relay is restarted if its process is gone; once the port answers,
   * the WebSocket, its hello, the subscriptions and a flush of the outbox.
   */
  private async retry(url: string): Promise<void> {
    const live = this.live;
    const link = live?.links.get(url);
    if (!live || live.stopped || !link) return;
    if (this.pool.isOpen(url)) return this.linkUp(url);
    let problem = await probeRelay(url);
    if (live.stopped) return;
    if (problem !== null && this.isPersonalRelay(url, live.env))
      problem = await this.revive(url, live, link, problem);
    if (live.stopped) return;
    if (problem !== null) return this.linkDown(url, problem, jittered(PROBE_MS));
    const now = Date.now();
    if (now < link.notBefore) return this.linkDown(url, link.lastError ?? "waiting", link.notBefore - now);
    this.setLink(url, { state: "connecting", nextRetryAt: null });
    const result = await this.pool.listenOn(url, this.deps.mailboxes().get(url) ?? []);
    if (live.stopped) return;
    if (result !== "ok" && !this.pool.isOpen(url)) {
      // Its port answered, yet no connection: back off (a proxy in front of a relay that is down,
      // a relay refusing us) rather than try again every second.
      link.failures += 1;
      const refusal = "refused" in result ? result.refused : null;
      const delay = refusal !== null ? REFUSED_RETRY_MS : attemptBackoffMs(url, link.failures);
      link.notBefore = Date.now() + delay;
      const why = "refused" in result ? result.refused : result.unreachable;
      if (refusal !== null && link.lastError !== why) warn(this.ctx, why);
      return this.linkDown(url, why, delay);
    }
    if (result !== "ok" && "refused" in result) warn(this.ctx, result.refused);
    this.linkUp(url);
    void this.deps
      .flush({ force: true })
      .catch((e: unknown) => warn(this.ctx, `outbox: ${(e as Error).message}`));
    this.deps.resumeUploads(true);
  }

  /** Is `url` the personal relay this client starts (settings.localRelay)? */
  private isPersonalRelay(url: string, env: NodeJS.ProcessEnv): boolean {
    const { settings } = this.ctx;
    return settings.localRelay === true && url === settings.relay && isLocalRelayUrl(url, env);
  }

  /**
   * Restarts the personal relay when its process is gone (or runs, but has not opened its port
   * for longer than a start takes). Returns null once it answers, else why not.
   */
  private async revive(url: string, live: State, link: Link, problem: string): Promise<string | null> {
    const now = Date.now();
    if (now < link.reviveNotBefore) return problem;
    const stuck = link.offlineSince !== null && now - link.offlineSince > REVIVE_GRACE_MS;
    if (localRelayPid(live.env) !== null && !stuck) return problem;
    this.setLink(url, {
      state: "connecting",
      nextRetryAt: null,
      lastError: "your personal relay stopped; restarting it",
    });
    try {
      const { started } = await ensureLocalRelay(live.env);
      link.revivals = 0;
      if (started) warn(this.ctx, "your personal relay had stopped; it was restarted");
      return null;
    } catch (e) {
      link.revivals += 1;
      link.reviveNotBefore = Date.now() + reviveBackoffMs(link.revivals);
      return `your personal relay stopped and could not be restarted: ${(e as Error).message}`;
    }
  }
}
