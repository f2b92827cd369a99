// pnpm bench (UI part): the terminal UI against the smallest Ink app that does the same job
// (bench/ink-baseline.tsx), both bundled as `parley` ships (scripts/bundle.mjs), both driven in a
// real pty (util-linux `script`, 80x24), in the same run:
// - start to the first painted frame (the unlock screen);
// - keypress to frame, p50 and p99, with the chat open on a conversation of 100,000 messages;
// - PageUp/PageDown to frame in that conversation;
// - a burst of 2,000 typed characters (letters, digits, spaces, é, ü, 中, 👍) written in random
//   chunks of 1 to 64 bytes, back to back: the time from its first byte to its last character
//   drawn, and whether it arrived intact (the message parley stored, read back from its home, and
//   the one its contact received through the relay, are byte for byte what was typed);
// - `npm start` to the first frame, cold (after deleting packages/client/dist/bundle) and warm
//   (nothing changed), against the bundle started alone;
// - the CPU time of the load generator (this process and `script`), to show it is not the limit.
//
//   BENCH_ROUNDS (default 5), BENCH_KEYS (keypresses per side per round, default 200),
//   BENCH_DEBUG=1 (prints what the pty prints).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startRelay } from "../../relay/test/helpers.js";
import { Client } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import type { Settings } from "../src/settings.js";
import { Store } from "../src/store.js";
import {
  childrenOf,
  cpuOf,
  EMPTY_LINE,
  ESC,
  escapeRe,
  FRAME_END,
  lineEndsWith,
  median,
  prng,
  pty,
  quantile,
  sleep,
} from "./pty.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const KEYS = Number(process.env.BENCH_KEYS ?? 200);
/** Keypresses before the measured ones, on both sides (the first ones pay for JIT warm-up). */
const WARMUP = 10;
const PAGES = 12;
const BURST = 2000;
/**
 * Pause after each frame before the next key. Ink draws at most one frame per 34 ms (maxFps 30,
 * leading and trailing edge): a key sooner than that after a frame waits for the throttle, which
 * would measure the throttle rather than the key.
 */
const SETTLE_MS = 50;
const HISTORY = 100_000;
const PASSPHRASE = "bench passphrase";
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const root = here("../../..");
const tmp = mkdtempSync(join(tmpdir(), "parley-ui-bench-"));
const home = join(tmp, "home");
const otherHome = join(tmp, "other");

/** A home whose one contact has a conversation of HISTORY messages (sealed into the real store). */
async function longConversation(settings: Settings): Promise<void> {
  const me = Client.init(resolvePaths(home), PASSPHRASE, "Bench", settings, 10);
  const other = Client.init(resolvePaths(otherHome), "pw", "Other", settings, 10);
  await other.accept((await me.invite()).code, { name: "bench" });
  await me.sync();
  other.close();
  me.close();
  const store = Store.open(resolvePaths(home).database, PASSPHRASE);
  const key = store.contacts()[0]!.key;
  const start = Date.now() - HISTORY * 60_000;
  store.tx(() => {
    for (let i = 0; i < HISTORY; i++) {
      const at = start + i * 60_000;
      const mine = i % 3 === 0;
      store.addMessage(key, {
        id: i.toString(16).padStart(32, "0"),
        direction: mine ? "out" : "in",
        text: `history ${i}${i % 7 === 0 ? "\na second line" : ""}`,
        sentAt: at,
        receivedAt: at,
        status: mine ? "delivered" : "read",
      });
    }
  });
  store.close();
}

/** The newest message in the home's one conversation, as stored. */
function newestStored(): string {
  const store = Store.open(resolvePaths(home).database, PASSPHRASE);
  try {
    const key = store.contacts()[0]!.key;
    return store.messagesBefore(key, undefined, 1)[0]?.value.text ?? "";
  } finally {
    store.close();
  }
}

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const MULTIBYTE = ["é", "ü", "中", "👍"];

/** 2,000 typed characters: mostly letters and digits, spaces, and one in twelve multi-byte. */
function burstText(seed: number): string {
  const r = prng(seed);
  let s = "";
  for (let i = 0; i < BURST; i++) {
    const x = r(12);
    s += x === 0 ? MULTIBYTE[r(MULTIBYTE.length)]! : x <= 2 ? " " : ALNUM[r(ALNUM.length)]!;
  }
  return s;
}

/** The burst's bytes, cut at random into chunks of 1 to 64 bytes (a character may be cut). */
function chunks(text: string, seed: number): Buffer[] {
  const r = prng(seed);
  const bytes = Buffer.from(text, "utf8");
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = 1 + r(64);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
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

/** The next frame (a page of the conversation: the bursts of earlier rounds have no fixed words). */
const NEXT_FRAME = new RegExp(FRAME_END);

interface Cpu {
  /** Wall time of the session, ms. */
  wall: number;
  /** This process (the load generator), ms. */
  bench: number;
  /** `script`, which copies keys and frames between the pipes and the pty, ms. */
  script: number;
  /** The app under test, ms. */
  app: number;
}

interface Session {
  first: number;
  keys: number[];
  pages: number[];
  /** First byte of the burst to its last character drawn; NaN when it never was (or no burst). */
  burst: number;
  /** What Enter took from the input line, as stored (parley) or written (baseline). */
  sent: string | null;
  cpu: Cpu;
}

interface Plan {
  /** The app under test (it unlocks, and pages through the conversation after the keys). */
  readonly parley: boolean;
  /** Keypresses one at a time (and, for parley, paging), or else a burst then Enter. */
  readonly burst?: string;
  readonly seed: number;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * One start of an app: first frame, (parley) unlock, then either single keypresses (and, for
 * parley, pages) or a burst and Enter; then Ctrl+C.
 */
async function session(argv: string[], plan: Plan): Promise<Session> {
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const p = pty(argv, { env: plan.env });
  let scriptCpu = 0;
  let appCpu = 0;
  try {
    const first = await p.until(/Parley is locked/, start);
    if (plan.parley) {
      p.write(`${PASSPHRASE}\r`);
      await p.until(new RegExp(`Contacts[\\s\\S]*?${FRAME_END}`), performance.now());
    }
    const press = (key: string, pattern: RegExp) => {
      p.output = "";
      const t = performance.now();
      p.write(key);
      return p.until(pattern, t);
    };
    const keys: number[] = [];
    const pages: number[] = [];
    let burst = Number.NaN;
    let sent: string | null = null;
    if (plan.burst === undefined) {
      const r = prng(plan.seed);
      let typed = "";
      for (let i = 0; i < WARMUP + KEYS; i++) {
        const c = ALNUM[r(ALNUM.length)]!;
        typed += c;
        // The last eight characters typed, then the cursor: this key's frame and no earlier one.
        const t = await press(c, lineEndsWith(typed.slice(-8)));
        if (i >= WARMUP) keys.push(t);
        await sleep(SETTLE_MS);
      }
    }
    // Paging through the long conversation: up from the newest, then down from the first.
    if (plan.burst === undefined && plan.parley) {
      for (let i = 0; i < PAGES; i++) {
        pages.push(await press(`${ESC}[5~`, NEXT_FRAME));
        await sleep(SETTLE_MS);
      }
      await press(`${ESC}[1;5H`, new RegExp(`history 0\\b[\\s\\S]*?${FRAME_END}`)); // Ctrl+Home
      await sleep(SETTLE_MS);
      for (let i = 0; i < PAGES; i++) {
        pages.push(await press(`${ESC}[6~`, NEXT_FRAME));
        await sleep(SETTLE_MS);
      }
    }
    if (plan.burst !== undefined) {
      // The burst, written back to back into an empty input line.
      p.output = "";
      const t = performance.now();
      for (const c of chunks(plan.burst, plan.seed)) p.write(c);
      // One key per React commit takes a while: wait generously, and report a burst that never
      // finished drawing instead of giving up on the run.
      burst = await p.until(lineEndsWith([...plan.burst].slice(-12).join("")), t, 300_000).catch((e) => {
        process.stderr.write(`burst not drawn: ${String(e).slice(0, 500)}\n`);
        return Number.NaN;
      });
      await sleep(SETTLE_MS);
      // Enter: parley sends it; its status mark, after its last word (or on the row below), says
      // the relay took it. The baseline writes it to a file.
      const lastWord = escapeRe(plan.burst.trimEnd().split(" ").at(-1)!);
      const sentMark = new RegExp(`${lastWord}(?:  |\r\n *│ *)\\[sent\\][\\s\\S]*?${FRAME_END}`);
      await press("\r", plan.parley ? sentMark : EMPTY_LINE).catch((e) => {
        process.stderr.write(`no [sent] mark after Enter: ${String(e).slice(0, 500)}\n`);
      });
    }
    scriptCpu = cpuOf(p.proc.pid);
    appCpu = childrenOf(p.proc.pid).reduce((n, pid) => n + cpuOf(pid), 0);
    await p.quit();
    const cpu = process.cpuUsage(cpu0);
    if (plan.burst !== undefined) {
      const out = plan.env?.BASELINE_OUT;
      sent = plan.parley ? newestStored() : out && existsSync(out) ? readFileSync(out, "utf8") : "";
    }
    return {
      first,
      keys,
      pages,
      burst,
      sent,
      cpu: {
        wall: performance.now() - start,
        bench: (cpu.user + cpu.system) / 1000,
        script: scriptCpu,
        app: appCpu,
      },
    };
  } finally {
    if (p.proc.exitCode === null) p.proc.kill("SIGKILL");
  }
}

/** Time from starting `argv` in the repository root to the unlock screen; Ctrl+C then. */
async function firstFrame(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const start = performance.now();
  const p = pty(argv, { cwd: root, env });
  try {
    const t = await p.until(/Parley is locked/, start, 300_000);
    await p.quit();
    return t;
  } finally {
    if (p.proc.exitCode === null) p.proc.kill("SIGKILL");
  }
}

/** The environment of a person's `npm start`: none of the variables pnpm gives this run. */
function startEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(npm_|pnpm_|PNPM_)/i.test(k)) env[k] = v;
  }
  env.PARLEY_HOME = home;
  env.npm_config_update_notifier = "false";
  return env;
}

/** Where two strings first differ, for a burst that did not arrive intact. */
function difference(got: string, want: string): string {
  if (got === want) return "";
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  return `differs at UTF-16 index ${i} of ${want.length} (got ${got.length}): ${JSON.stringify(got.slice(i, i + 20))} for ${JSON.stringify(want.slice(i, i + 20))}`;
}

const relay = await startRelay(["--storage", "memory"]);
try {
  const settings: Settings = { relay: `ws://127.0.0.1:${relay.port}`, maxRetentionSeconds: 30 * 86400 };
  const load0 = loadavg()[0]!;
  const made = performance.now();
  await longConversation(settings);
  console.error(`a home with ${HISTORY} messages in ${((performance.now() - made) / 1000).toFixed(1)} s`);
  const bundles = bundle();
  const ui = { first: [] as number[], keys: [] as number[], pages: [] as number[], burst: [] as number[] };
  const base = {
    first: [] as number[],
    keys: [] as number[],
    burst: [] as number[],
    burstPerKey: [] as number[],
  };
  const intact = { parley: 0, base: 0, basePerKey: 0 };
  const bursts: string[] = [];
  const load = { wall: 0, bench: 0, script: 0, app: 0 };
  const starts = { cold: [] as number[], warm: [] as number[], alone: [] as number[], warmBundled: 0 };
  const bundleDir = join(root, "packages", "client", "dist", "bundle");
  const bundleEntry = join(bundleDir, "parley.js");
  const env = startEnv();
  const addLoad = (c: Cpu) => {
    load.wall += c.wall;
    load.bench += c.bench;
    load.script += c.script;
    load.app += c.app;
  };
  const progress = (what: string) =>
    console.error(`${what} (${((performance.now() - made) / 1000).toFixed(0)} s)`);
  // Keys and pages first, every round on the same screen (the bursts sent later would be on it).
  for (let r = 0; r < ROUNDS; r++) {
    const b = await session([process.execPath, bundles.baseline], { parley: false, seed: r + 1 });
    const u = await session([process.execPath, bundles.parley, "--home", home], {
      parley: true,
      seed: r + 1,
    });
    base.first.push(b.first);
    base.keys.push(...b.keys);
    ui.first.push(u.first);
    ui.keys.push(...u.keys);
    ui.pages.push(...u.pages);
    addLoad(b.cpu);
    addLoad(u.cpu);
    progress(
      `keys ${r + 1}/${ROUNDS}: p50 ${median(u.keys).toFixed(1)} ms, p99 ${quantile(u.keys, 0.99).toFixed(1)} ms (baseline ${median(b.keys).toFixed(1)}, ${quantile(b.keys, 0.99).toFixed(1)}); pages p50 ${median(u.pages).toFixed(1)} ms`,
    );
  }
  // Bursts: the same characters, chunked alike, into the baseline (both ways) and parley.
  for (let r = 0; r < ROUNDS; r++) {
    const burst = burstText(1000 + r);
    bursts.push(burst);
    const out = join(tmp, `baseline-${r}.txt`);
    const plan = { burst, seed: 1000 + r, env: { BASELINE_OUT: out } };
    const b = await session([process.execPath, bundles.baseline], { ...plan, parley: false });
    rmSync(out, { force: true });
    const bk = await session([process.execPath, bundles.baseline, "--per-key"], { ...plan, parley: false });
    const u = await session([process.execPath, bundles.parley, "--home", home], { ...plan, parley: true });
    base.first.push(b.first, bk.first);
    ui.first.push(u.first);
    base.burst.push(b.burst);
    base.burstPerKey.push(bk.burst);
    ui.burst.push(u.burst);
    for (const [name, s] of [
      ["parley", u],
      ["baseline", b],
      ["baseline --per-key", bk],
    ] as const) {
      const d = difference(s.sent ?? "", burst);
      if (d) console.error(`burst ${r + 1}: ${name}: the burst did not arrive intact: ${d}`);
    }
    if (u.sent === burst) intact.parley++;
    if (b.sent === burst) intact.base++;
    if (bk.sent === burst) intact.basePerKey++;
    addLoad(b.cpu);
    addLoad(bk.cpu);
    addLoad(u.cpu);
    progress(
      `burst ${r + 1}/${ROUNDS}: ${u.burst.toFixed(0)} ms (baseline ${b.burst.toFixed(0)}, one key per commit ${bk.burst.toFixed(0)})`,
    );
  }
  // `npm start` from the repository root: cold (the bundle deleted, so it bundles), then warm;
  // and the bundle it starts, alone.
  for (let r = 0; r < ROUNDS; r++) {
    rmSync(bundleDir, { recursive: true, force: true });
    starts.cold.push(await firstFrame(["npm", "start"], env));
    const built = statSync(bundleEntry).mtimeMs;
    starts.warm.push(await firstFrame(["npm", "start"], env));
    if (statSync(bundleEntry).mtimeMs !== built) starts.warmBundled++;
    starts.alone.push(await firstFrame([process.execPath, bundleEntry], env));
    progress(
      `npm start ${r + 1}/${ROUNDS}: cold ${starts.cold.at(-1)!.toFixed(0)} ms, warm ${starts.warm.at(-1)!.toFixed(0)} ms, the bundle alone ${starts.alone.at(-1)!.toFixed(0)} ms`,
    );
  }

  // The other side: every burst parley sent, received through the relay, in order.
  const other = Client.open(resolvePaths(otherHome), "pw", settings);
  let received: string[];
  try {
    await other.sync();
    received = other
      .conversation("bench", {}, ROUNDS)
      .filter((e) => e.message.direction === "in")
      .map((e) => e.message.text);
  } finally {
    other.close();
  }
  const relayed = bursts.filter((b, i) => received[i] === b).length;

  const ms = (x: number) => (Number.isNaN(x) ? "n/a" : `${x.toFixed(x < 100 ? 1 : 0)} ms`);
  const ratio = (u: number, b: number) => (Number.isNaN(u) || Number.isNaN(b) ? "n/a" : (u / b).toFixed(2));
  const rows: [string, string, string, string][] = [];
  const timed = (what: string, u: number, b: number) => rows.push([what, ms(u), ms(b), ratio(u, b)]);
  const yes = (n: number, of: number) => `${n === of ? "yes" : "NO"} ${n}/${of}`;
  timed("start to first frame, median (Ink app)", median(ui.first), median(base.first));
  timed(
    `keypress to frame p50, ${HISTORY.toLocaleString("en")} msgs open (Ink app)`,
    median(ui.keys),
    median(base.keys),
  );
  timed(
    `keypress to frame p99, ${HISTORY.toLocaleString("en")} msgs open (Ink app)`,
    quantile(ui.keys, 0.99),
    quantile(base.keys, 0.99),
  );
  timed("PageUp/PageDown to frame, median (Ink app keypress p50)", median(ui.pages), median(base.keys));
  timed(
    `${BURST.toLocaleString("en")}-char burst, first byte to drawn (Ink app)`,
    median(ui.burst),
    median(base.burst),
  );
  timed("the same burst (Ink app, one key per commit)", median(ui.burst), median(base.burstPerKey));
  rows.push([
    "burst intact: stored = typed (Ink app: its line)",
    yes(intact.parley, ROUNDS),
    yes(intact.base + intact.basePerKey, 2 * ROUNDS),
    "",
  ]);
  rows.push(["burst intact: received through the relay", yes(relayed, ROUNDS), "", ""]);
  timed("npm start, cold, to first frame (the bundle alone)", median(starts.cold), median(starts.alone));
  timed("npm start, warm, to first frame (the bundle alone)", median(starts.warm), median(starts.alone));
  const header: [string, string, string, string] = ["measure (the baseline)", "parley", "baseline", "ratio"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  console.log(
    `terminal UI vs the smallest Ink app doing the same with a key (bench/ink-baseline.tsx), both bundled, 80x24 pty, ${ROUNDS} rounds`,
  );
  console.log(line(header));
  console.log(line(widths.map((w) => "-".repeat(w))));
  for (const r of rows) console.log(line(r));
  console.log(
    `keypresses: ${ui.keys.length} per side (${KEYS} a round, after ${WARMUP} unmeasured), each ${SETTLE_MS} ms after the previous frame; medians of ${ROUNDS} bursts of ${BURST} characters in chunks of 1-64 bytes; warm npm starts that bundled again: ${starts.warmBundled} of ${ROUNDS}`,
  );
  console.log(
    `load average (1 min) ${load0.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end, on ${availableParallelism()} cores`,
  );
  const pct = (x: number) => `${((100 * x) / load.wall).toFixed(1)}%`;
  console.log(
    `load generator CPU over the key, page and burst sessions (${(load.wall / 1000).toFixed(1)} s): this process ${(load.bench / 1000).toFixed(1)} s (${pct(load.bench)} of one core), script ${(load.script / 1000).toFixed(1)} s (${pct(load.script)}); the apps under test ${(load.app / 1000).toFixed(1)} s (${pct(load.app)})`,
  );
} finally {
  await relay.stop();
  rmSync(tmp, { recursive: true, force: true });
}
