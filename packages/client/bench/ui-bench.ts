// pnpm bench (UI part): time from start to the first painted frame of `parley` (the unlock
// screen), from a keypress to the next frame in the chat, and from PageUp/PageDown to the next
// frame in a conversation of 100,000 messages, each against the smallest Ink app started and
// driven the same way in the same run. Both are bundled as `parley` ships
// (scripts/bundle.mjs) and both run in a real pty (util-linux `script`).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startRelay } from "../../relay/test/helpers.js";
import { Client } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import { Store } from "../src/store.js";

const DEBUG = process.env.BENCH_DEBUG === "1";
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const KEYS = 12;
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "parley-ui-bench-"));
const home = join(tmp, "home");
const HISTORY = 100_000;

/** A home whose one contact has a conversation of HISTORY messages (sealed into the real store). */
async function longConversation(url: string): Promise<void> {
  const settings = { relay: url, maxRetentionSeconds: 30 * 86400 };
  const me = Client.init(resolvePaths(home), "bench passphrase", "Bench", settings, 10);
  const other = Client.init(resolvePaths(join(tmp, "other")), "pw", "Other", settings, 10);
  await other.accept((await me.invite()).code, { name: "bench" });
  await me.sync();
  other.close();
  me.close();
  const store = Store.open(resolvePaths(home).database, "bench passphrase");
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
          () => reject(new Error(`timeout waiting for ${pattern}: ${JSON.stringify(p.output.slice(-2000))}`)),
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

/** A whole frame that shows the conversation: Ink ends each frame with synchronized output off. */
const CONVERSATION_FRAME = new RegExp(`history \\d+[\\s\\S]*${String.fromCharCode(27)}\\[\\?2026l`);

async function measure(
  argv: string[],
  unlock: boolean,
): Promise<{ first: number; key: number; page: number }> {
  const start = performance.now();
  const p = pty(argv);
  try {
    const first = await p.until(/Parley is locked/, start);
    if (unlock) {
      p.proc.stdin!.write("bench passphrase\r");
      await p.until(/Contacts/, performance.now());
    }
    const press = (key: string, pattern: RegExp) => {
      p.output = "";
      const t = performance.now();
      p.proc.stdin!.write(key);
      return p.until(pattern, t);
    };
    const times: number[] = [];
    let typed = "";
    // A character that appears nowhere else on screen, so its echo marks the next frame.
    for (let i = 0; i < KEYS; i++) {
      typed += "§";
      times.push(await press("§", new RegExp(typed)));
    }
    // Paging through the long conversation: up from the newest, then down from the first.
    const pages: number[] = [];
    if (unlock) {
      for (let i = 0; i < KEYS; i++) pages.push(await press("\u001b[5~", CONVERSATION_FRAME));
      await press("\u001b[H", /history 0\b/);
      for (let i = 0; i < KEYS; i++) pages.push(await press("\u001b[6~", CONVERSATION_FRAME));
    }
    p.proc.stdin!.write("\u0003");
    await new Promise((r) => p.proc.once("exit", r));
    return { first, key: median(times), page: pages.length ? median(pages) : 0 };
  } finally {
    if (p.proc.exitCode === null) p.proc.kill("SIGKILL");
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const relay = await startRelay(["--storage", "memory"]);
try {
  await longConversation(`ws://127.0.0.1:${relay.port}`);
  const bundles = bundle();
  const ui = { first: [] as number[], key: [] as number[], page: [] as number[] };
  const base = { first: [] as number[], key: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    const b = await measure([process.execPath, bundles.baseline], false);
    const u = await measure([process.execPath, bundles.parley, "--home", home], true);
    base.first.push(b.first);
    base.key.push(b.key);
    ui.first.push(u.first);
    ui.key.push(u.key);
    ui.page.push(u.page);
  }
  const row = (what: string, u: number[], b: number[]) =>
    `| ${what.padEnd(26)} | ${median(u).toFixed(0).padStart(7)} ms | ${median(b).toFixed(0).padStart(9)} ms | ${(median(u) / median(b)).toFixed(2).padStart(5)} |`;
  console.log(`terminal UI vs the smallest Ink app, median of ${ROUNDS} rounds, 80x24 pty, both bundled`);
  console.log("| measure                    | parley UI  | Ink baseline | ratio |");
  console.log("| -------------------------- | ---------- | ------------ | ----- |");
  console.log(row("start to first frame", ui.first, base.first));
  console.log(row("keypress to next frame", ui.key, base.key));
  console.log(row(`page in ${HISTORY.toLocaleString("en")} messages`, ui.page, base.key));
} finally {
  await relay.stop();
  rmSync(tmp, { recursive: true, force: true });
}
