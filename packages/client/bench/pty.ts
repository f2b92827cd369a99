// What the terminal benchmarks (ui-bench.ts, flood-bench.ts) share: an app driven in a real pty
// (util-linux `script`, 80x24), the frames Ink draws, CPU time from /proc, and a few statistics.
//
//   BENCH_DEBUG=1 prints what the pty prints.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

const DEBUG = process.env.BENCH_DEBUG === "1";
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** CPU time (user + system, ms) of a live process, from /proc. */
export function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** The processes `script` started (the app, once the shell exec'd it). */
export function childrenOf(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** How far back a match may begin before the newest read (a frame is some 3 kB). */
const OVERLAP = 16_384;

export interface Pty {
  readonly proc: ChildProcess;
  output: string;
  /** Resolves with the time (ms since `since`) at which the output first matched. */
  until(pattern: RegExp, since: number, timeoutMs?: number): Promise<number>;
  /** Writes to the terminal's input. */
  write(data: string | Buffer): void;
  /** Ctrl+C, then waits for the exit (SIGKILL after 10 s). */
  quit(): Promise<void>;
}

export function pty(argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Pty {
  const command = argv.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const env = {
    ...process.env,
    ...options.env,
    PARLEY_SCRYPT_LOG_N: "10",
    NO_COLOR: "1",
    COLUMNS: "80",
    LINES: "24",
  };
  // Ink draws differently in CI (no synchronized output, no erasing).
  delete (env as NodeJS.ProcessEnv).CI;
  const proc = spawn("script", ["-qec", `stty cols 80 rows 24; exec ${command}`, "/dev/null"], {
    cwd: options.cwd,
    env,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const p: Pty = {
    proc,
    output: "",
    until(pattern, since, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        // Each read is searched with what came just before it, not the whole output again.
        let from = 0;
        const check = () => {
          if (from > p.output.length) from = 0;
          if (pattern.test(p.output.slice(Math.max(0, from - OVERLAP)))) {
            proc.stdout!.off("data", check);
            proc.off("exit", exited);
            clearTimeout(timer);
            resolve(performance.now() - since);
          }
          from = p.output.length;
        };
        const fail = (why: string) => {
          proc.stdout!.off("data", check);
          proc.off("exit", exited);
          reject(new Error(`${why} waiting for ${pattern}: ${JSON.stringify(p.output.slice(-2000))}`));
        };
        const exited = () => fail(`exit (${proc.exitCode ?? proc.signalCode})`);
        const timer = setTimeout(() => fail(`timeout (${timeoutMs} ms)`), timeoutMs);
        proc.stdout!.on("data", check);
        proc.once("exit", exited);
        check();
      });
    },
    write(data) {
      proc.stdin!.write(data);
    },
    async quit() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exit = new Promise((r) => proc.once("exit", r));
      proc.stdin!.write("\u0003");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
  proc.stdout!.setEncoding("utf8");
  proc.stdout!.on("data", (d: string) => {
    p.output += d;
    if (DEBUG) process.stderr.write(`${JSON.stringify(d).slice(0, 300)}\n`);
  });
  return p;
}

export const ESC = String.fromCharCode(27);
export const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** The end of every frame: Ink brackets each one in synchronized output. */
export const FRAME_END = `${ESC}\\[\\?2026l`;
/** The cursor cell at the end of the input line (both apps draw it as an inverse space). */
const CURSOR = `${ESC}\\[7m ${ESC}\\[27m`;
/** A whole frame whose input line ends with `text` (then the cursor). */
export const lineEndsWith = (text: string) => new RegExp(`${escapeRe(text)}${CURSOR}[\\s\\S]*?${FRAME_END}`);
/** A whole frame with an empty input line. */
export const EMPTY_LINE = new RegExp(`> (?:${ESC}\\[[0-9;]*m)*${CURSOR}[\\s\\S]*?${FRAME_END}`);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A small seeded PRNG (mulberry32), so every run types the same keys. */
export function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const sorted = (xs: number[]) => xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
/** The q-quantile by nearest rank. */
export const quantile = (xs: number[], q: number) => {
  const s = sorted(xs);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)] ?? Number.NaN;
};
export const median = (xs: number[]) => quantile(xs, 0.5);
