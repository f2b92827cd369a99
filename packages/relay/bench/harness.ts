// What the relay benchmarks (relay-bench.ts, scale-bench.ts) share, apart from the protocol client
// (load-client.ts): a `Bench` that owns the child processes (each stopped by its own PID, never by
// name) and temporary directories and cleans them up on exit, on error and on a signal; env-number
// parsing; CPU readings from /proc; latency percentiles; a paced sender for open-loop loads; and the
// number and table formatting of the reports.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** --rate-limit of every benchmarked relay: a load generator pipelines far more than the default 200/s. */
export const RELAY_RATE_LIMIT = 1_000_000;

const RELAY_DIR = fileURLToPath(new URL("..", import.meta.url));
const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
/** Diagnostics: BENCH_CPU_PROF=<dir> starts each relay with --cpu-prof into <dir> (written when it exits). */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF || null;
const RELAY_READY = /"port":(\d+).*"msg":"relay listening"/;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const CLK_TCK = 100;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- processes and temporary directories ------------------------------------------------------

/** A child process that is ready: its PID (for /proc readings), the port it listens on, and its stop. */
export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s; resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * One benchmark run, named as its messages are prefixed (`relay-bench: ...`). Making it installs
 * the clean-up: on exit, and on SIGINT, SIGTERM and SIGHUP (exit code 130), every child still
 * running is killed with SIGKILL and every temporary directory removed.
 */
export class Bench {
  private readonly children = new Set<ChildProcess>();
  private readonly tempDirs = new Set<string>();

  constructor(readonly name: string) {
    process.on("exit", () => this.killEverything());
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.once(signal, () => {
        this.progress(`${signal}: stopping`);
        this.killEverything();
        process.exit(130);
      });
    }
  }

  /** A progress line on stderr (stdout is for the report). */
  progress(msg: string): void {
    process.stderr.write(`${this.name}: ${msg}\n`);
  }

  /** Prints `msg` and exits with code 2: for a setting that cannot be used. */
  usageError(msg: string): never {
    process.stderr.write(`${this.name}: ${msg}\n`);
    process.exit(2);
  }

  /** The number in env variable `name` (underscores allowed: 50_000), `fallback` if unset or empty. */
  envNumber(name: string, fallback: number, min: number): number {
    const raw = process.env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw.replaceAll("_", ""));
    if (!Number.isFinite(n) || n < min) this.usageError(`${name}="${raw}" must be a number >= ${min}`);
    return n;
  }

  /** A fresh temporary directory (parley-<name>-XXXXXX), removed at the latest when this process exits. */
  tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), `parley-${this.name}-`));
    this.tempDirs.add(d);
    return d;
  }

  /** Removes `dir` now; also for a directory this Bench did not make but should clean up on exit. */
  removeTempDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    this.tempDirs.delete(dir);
  }

  /** Has `dir`, made elsewhere, removed on exit like the directories of tempDir(). */
  adoptTempDir(dir: string): void {
    this.tempDirs.add(dir);
  }

  /**
   * Spawns `command` (cwd: the relay package) and resolves once `ready` matches its output (stdout
   * and stderr, the last 64 KiB), with the port `port` reads from the match. Rejects if it cannot be
   * started, exits first, or is not ready within 30 s. Its stdin is a pipe, so a child can notice
   * that this process went away.
   */
  async launch(
    name: string,
    command: string,
    args: string[],
    ready: RegExp,
    port: (m: RegExpExecArray) => number,
  ): Promise<Proc> {
    const proc = spawn(command, args, { cwd: RELAY_DIR, stdio: ["pipe", "pipe", "pipe"] });
    this.children.add(proc);
    let out = "";
    const keep = (d: Buffer) => {
      out = (out + d.toString()).slice(-64 * 1024);
    };
    proc.stdout!.on("data", keep);
    proc.stderr!.on("data", keep);
    const exited = new Promise<void>((resolve) =>
      proc.once("exit", () => {
        this.children.delete(proc);
        resolve();
      }),
    );
    const bound = await new Promise<number>((resolve, reject) => {
      const timeout = setTimeout(() => {
        clearInterval(timer);
        reject(new Error(`${name} did not start within ${START_TIMEOUT_MS / 1000} s:\n${out}`));
      }, START_TIMEOUT_MS);
      const timer = setInterval(() => {
        const m = ready.exec(out);
        if (m) {
          clearInterval(timer);
          clearTimeout(timeout);
          resolve(port(m));
        }
      }, 20);
      proc.once("error", (e) => reject(new Error(`cannot start ${name}: ${e.message}`)));
      void exited.then(() => {
        clearInterval(timer);
        clearTimeout(timeout);
        reject(new Error(`${name} exited before it was ready:\n${out}`));
      });
    });
    return {
      name,
      pid: proc.pid!,
      port: bound,
      stop: async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(t);
      },
    };
  }

  /**
   * Runs a TypeScript `script` in its own node process (tsx loader, `source` export condition,
   * `nodeArgs` before the script); `ready` captures the port it listens on as group 1.
   */
  launchScript(
    name: string,
    script: string,
    args: string[],
    ready: RegExp,
    nodeArgs: string[] = [],
  ): Promise<Proc> {
    const node = ["--conditions=source", "--import", "tsx", ...nodeArgs, script, ...args];
    return this.launch(name, process.execPath, node, ready, (m) => Number(m[1]));
  }

  /**
   * A relay (src/cli.ts) on 127.0.0.1, a port of its choosing: `--port 0 <storage> --rate-limit
   * 1000000 <extra>`, with --cpu-prof when BENCH_CPU_PROF is set.
   */
  startRelay(name: string, storage: string[], extra: string[] = []): Promise<Proc> {
    const prof = CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${CPU_PROF_DIR}`] : [];
    const args = ["--port", "0", ...storage, "--rate-limit", String(RELAY_RATE_LIMIT), ...extra];
    return this.launchScript(name, CLI, args, RELAY_READY, prof);
  }

  /** Runs `main`, then cleans up and exits: code 0, or 1 with the error's stack on stderr. */
  run(main: () => Promise<void>): void {
    main().then(
      () => {
        this.killEverything();
        process.exit(0);
      },
      (e: unknown) => {
        process.stderr.write(`${this.name}: ${(e as Error).stack ?? e}\n`);
        this.killEverything();
        process.exit(1);
      },
    );
  }

  private killEverything(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const d of this.tempDirs) rmSync(d, { recursive: true, force: true });
    this.tempDirs.clear();
  }
}

// ---- machine and CPU --------------------------------------------------------------------------

/** The 1, 5 and 15 minute load averages, "1.23 0.98 0.76". */
export const loadavgText = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

/** The first entries of every report's environment line. */
export function machine(): { node: string; cpus: string; loadavg: string } {
  return {
    node: process.version,
    cpus: `${availableParallelism()} (${cpus()[0]?.model.trim() ?? "?"})`,
    loadavg: loadavgText(),
  };
}

/** User + system CPU seconds of a process, from /proc/<pid>/stat; NaN once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** User + system CPU seconds of this process. */
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** CPU used, as % of one core, by some processes and by this one, from when the meter is made. */
export class CpuMeter {
  private readonly start: number[];
  private readonly ownStart: number;

  constructor(private readonly pids: readonly number[]) {
    this.start = pids.map((pid) => cpuSeconds(pid));
    this.ownStart = ownCpuSeconds();
  }

  /** Each process's share, in the order given, over `seconds`. */
  processes(seconds: number): number[] {
    return this.pids.map((pid, i) => ((cpuSeconds(pid) - this.start[i]!) / seconds) * 100);
  }

  /** This process's share over `seconds`. */
  own(seconds: number): number {
    return ((ownCpuSeconds() - this.ownStart) / seconds) * 100;
  }
}

// ---- latency ------------------------------------------------------------------------------------

/** The value below which a fraction `q` (0..1) of `sorted` lies; NaN if it is empty. */
function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Latencies (ms), with the time each message was sent, in a growing Float64Array. */
export class Recorder {
  private values = new Float64Array(1 << 16);
  /** When each recorded message was sent (for BENCH_LATENCY_DUMP). */
  private times = new Float64Array(1 << 16);
  count = 0;

  add(v: number, sentAt = 0): void {
    if (this.count === this.values.length) {
      const values = new Float64Array(this.values.length * 2);
      values.set(this.values);
      this.values = values;
      const times = new Float64Array(this.times.length * 2);
      times.set(this.times);
      this.times = times;
    }
    this.times[this.count] = sentAt;
    this.values[this.count++] = v;
  }

  reset(): void {
    this.count = 0;
  }

  /** p50, p99 and max of what was recorded since the last reset (NaN if nothing was). */
  summary(): { p50: number; p99: number; max: number } {
    if (this.count === 0) return { p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
    const sorted = this.values.slice(0, this.count).sort();
    return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1]! };
  }

  /** CSV: send time (ms since the first recorded send), latency (ms). */
  csv(): string {
    const t0 = this.times[0] ?? 0;
    const rows = ["sent_ms,latency_ms"];
    for (let i = 0; i < this.count; i++) {
      rows.push(`${(this.times[i]! - t0).toFixed(3)},${this.values[i]!.toFixed(3)}`);
    }
    return `${rows.join("\n")}\n`;
  }
}

/**
 * Calls `send` from a 1 ms ticker as often as is due at `rate` calls per second from now,
 * independent of any reply (an open-loop load); returns the function that stops it.
 */
export function pace(rate: number, send: () => void): () => void {
  const start = performance.now();
  let done = 0;
  const ticker = setInterval(() => {
    const due = Math.floor((rate * (performance.now() - start)) / 1000);
    for (; done < due; done++) send();
  }, 1);
  return () => clearInterval(ticker);
}

// ---- report -------------------------------------------------------------------------------------

/** A whole number with thousands separators ("12,345"); "n/a" if not finite. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Milliseconds to two decimals; "n/a" if not finite. */
export const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "n/a");

/** Rows as an indented table: the first column left-aligned, the others right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) => `  ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")}`)
    .join("\n");
}
