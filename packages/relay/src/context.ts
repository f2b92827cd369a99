// What the parts of the relay share (connections.ts, frames.ts, delivery.ts, proofs.ts, http.ts):
// its configuration, storage, metrics and log, whether it is draining, and the work under way that a
// drain waits for.
import type { RelayConfig } from "./config.js";
import type { Logger } from "./log.js";
import type { RelayMetrics } from "./metrics.js";
import { type Storage, StorageUnavailableError } from "./storage/types.js";

/** While the storage is unavailable, failing requests are logged at most once per this many ms. */
const STORAGE_TROUBLE_LOG_MS = 10_000;

export interface RelayContextOptions {
  readonly config: RelayConfig;
  readonly storage: Storage;
  readonly metrics: RelayMetrics;
  readonly log: Logger;
  readonly now: () => number;
}

export class RelayContext {
  readonly config: RelayConfig;
  readonly storage: Storage;
  readonly metrics: RelayMetrics;
  readonly log: Logger;
  readonly now: () => number;
  /** Set by drain(): new connections and requests are refused, no delivery round starts. */
  draining = false;
  private readonly work = new Set<Promise<unknown>>();
  private storageTroubleLoggedAt = 0;
  private storageTroubleSuppressed = 0;

  constructor(o: RelayContextOptions) {
    this.config = o.config;
    this.storage = o.storage;
    this.metrics = o.metrics;
    this.log = o.log;
    this.now = o.now;
  }

  /** Keeps `work` (which must not reject) until it settles, so that drain() waits for it. */
  hold(work: Promise<unknown>): void {
    this.work.add(work);
    void work.finally(() => this.work.delete(work));
  }

  /** Runs background work so that a failure is logged, never an unhandled rejection, and drain waits for it. */
  track(work: Promise<unknown>): void {
    this.hold(
      work.catch((e: unknown) => {
        // Whatever waits stays stored: the resync after the storage comes back delivers it.
        if (e instanceof StorageUnavailableError) this.storageTrouble(e);
        else this.log.error({ err: e }, "background delivery failed");
      }),
    );
  }

  /** Resolves when no work is under way. Work can start more work (an ack resumes deliveries): none is left. */
  async settled(): Promise<void> {
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
  }

  /** Logs that requests fail because the storage is unavailable: once per interval, with a count. */
  storageTrouble(e: StorageUnavailableError): void {
    const t = Date.now();
    if (t - this.storageTroubleLoggedAt < STORAGE_TROUBLE_LOG_MS) {
      this.storageTroubleSuppressed++;
      return;
    }
    this.log.warn(
      { err: e.message, alsoFailedSinceLastLog: this.storageTroubleSuppressed },
      "storage unavailable: requests fail",
    );
    this.storageTroubleLoggedAt = t;
    this.storageTroubleSuppressed = 0;
  }
}
