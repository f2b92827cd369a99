// pnpm bench (UI part): time from start to the first painted frame of `parley` (the unlock
// screen), and from a keypress to the next frame in the chat, each against the smallest Ink app
// started and driven the same way in the same run. Both are bundled as `parley` ships
// (scripts/bundle.mjs) and both run in a real pty (util-linux `script`).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";

const DEBUG = process.env.BENCH_DEBUG === "1";
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const KEYS = 12;
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "parley-ui-bench-"));
const home = join(tmp, "home");
Client.init(resolvePaths(home), "bench passphrase", "Bench", { maxRetentionSeconds: 30 * 86400 }, 10).close();

interface Pty {
  readonly proc: ChildProcess;
  output: string;
  /** Resolves with the time (ms since `since`) at which the output first matched. */
  until(pattern: RegExp, since: number): Promise<number>;
}

function pty(argv: string[]): Pty {
  const command = argv.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const env = { ...process.env, PARLEY_SCRYPT_LOG_N: "10", NO_COLOR: "1", COLUMNS: "80", LINES: "24" };
  delete (env as NodeJS.ProcessEnv).CI;
  const proc = spawn("script", ["-qec", `stty cols 80 rows 24; exec ${command}`, "/dev/null"], {
    env,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const p: Pty = {
    proc,
    output: "",
    until(pattern, since) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(p.output)) {
            proc.stdout!.off("data", check);
            clearTimeout(timer);
            resolve(performance.now() - since);
          }
        };
        const timer = setTimeout(
          () => reject(new Error(`timeout waiting for ${pattern}:\n${p.output.slice(-2000)}`)),
          30_000,
        );
        proc.stdout!.on("data", check);
        check();
      });
    },
  };
  proc.stdout!.setEncoding("utf8");
  proc.stdout!.on("data", (d: string) => {
    p.output += d;
    if (DEBUG) process.stderr.write(`${JSON.stringify(d).slice(0, 200)}\n`);
  });
  return p;
}

/** Bundles parley and the baseline into one directory, with the same esbuild settings. */
function bundle(): { parley: string; baseline: string } {
  // Inside the package, so the bundle finds better-sqlite3 as the shipped one does.
  const outdir = here("../dist/bench-bundle");
  const r = spawnSync(
    process.execPath,
    [here("../scripts/bundle.mjs"), "--outdir", outdir, "--entry", `baseline=${here("./ink-baseline.tsx")}`],
    { stdio: "inherit" },
  );
  if (r.status !== 0) throw new Error("bundling failed");
  return { parley: join(outdir, "parley.js"), baseline: join(outdir, "baseline.js") };
}

async function measure(argv: string[], unlock: boolean): Promise<{ first: number; key: number }> {
  const start = performance.now();
  const p = pty(argv);
  const first = await p.until(/Parley is locked/, start);
  if (unlock) {
    p.proc.stdin!.write("bench passphrase\r");
    await p.until(/Contacts/, performance.now());
  }
  const times: number[] = [];
  let typed = "";
  // A character that appears nowhere else on screen, so its echo marks the next frame.
  for (let i = 0; i < KEYS; i++) {
    typed += "§";
    p.output = "";
    const t = performance.now();
    p.proc.stdin!.write("§");
    times.push(await p.until(new RegExp(typed), t));
  }
  p.proc.stdin!.write("\u0003");
  await new Promise((r) => p.proc.once("exit", r));
  return { first, key: median(times) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  const bundles = bundle();
  const ui = { first: [] as number[], key: [] as number[] };
  const base = { first: [] as number[], key: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    const b = await measure([process.execPath, bundles.baseline], false);
    const u = await measure([process.execPath, bundles.parley, "--home", home], true);
    base.first.push(b.first);
    base.key.push(b.key);
    ui.first.push(u.first);
    ui.key.push(u.key);
  }
  const row = (what: string, u: number[], b: number[]) =>
    `| ${what.padEnd(26)} | ${median(u).toFixed(0).padStart(7)} ms | ${median(b).toFixed(0).padStart(9)} ms | ${(median(u) / median(b)).toFixed(2).padStart(5)} |`;
  console.log(`terminal UI vs the smallest Ink app, median of ${ROUNDS} rounds, 80x24 pty, both bundled`);
  console.log("| measure                    | parley UI  | Ink baseline | ratio |");
  console.log("| -------------------------- | ---------- | ------------ | ----- |");
  console.log(row("start to first frame", ui.first, base.first));
  console.log(row("keypress to next frame", ui.key, base.key));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
