// pnpm bench:flood: the terminal UI's keypress latency while a stranger floods it with forged
// messages (issue 13, medium 1), as a ratio to the same UI idle, measured in the same run.
//
// Alice invited Bob, Bob accepted, and Alice's UI (the bundled `parley`, in a real 80x24 pty) is
// open on the chat with Bob while the invitation's first-contact mailbox is still open: Bob has
// not written to his new inbox yet, so anyone who saw the code can deposit there. Rounds alternate
// an idle window and a flood window (BENCH_ROUNDS of each), so machine noise hits both; in each
// window the bench types keys one at a time and times each from its write to the frame that shows
// it. During a flood window a separate process (this file with --flooder) deposits forged Messages
// into that mailbox as fast as the relay takes them: half claim a new ratchet key with PN = N = 30
// (the costliest that passes the 64-key bound, PROTOCOL.md §6.3), half PN = N = 1000 (refused
// before any key is derived). A flood window starts once the UI is acknowledging forgeries, and
// the next idle window once the relay holds none (the backlog drained).
//
// Reports keypress-to-frame p50, p99 and max idle and under flood with their ratio, the forged
// deliveries the UI acknowledged per second, what the relay accepted and refused, and the CPU of
// the UI, the relay, the flooder and the load generator (this process and `script`), so the
// ratio is not a measure of the generator.
//
//   BENCH_ROUNDS (idle and flood windows each, default 5), BENCH_KEYS (keypresses per window,
//   default 200), BENCH_FLOOD_CONNECTIONS (the flooder's connections, default 4; the relay lets
//   each sends at the relay's limit, 200 frames/s), BENCH_MAILBOX_MAX_MESSAGES (the relay's
//   per-mailbox quota, default 1000), BENCH_DEBUG=1 (prints what the pty prints).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { fromHex, MailboxKey, toHex, x25519KeyPair } from "@parley/protocol";
import { DEFAULTS } from "../../relay/src/config.js";
import { startRelay } from "../../relay/test/helpers.js";
import { Client } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import { RelayConnection, RelayRequestError } from "../src/relay-connection.js";
import type { Settings } from "../src/settings.js";
import {
  childrenOf,
  cpuOf,
  EMPTY_LINE,
  ESC,
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
const CONNECTIONS = Number(process.env.BENCH_FLOOD_CONNECTIONS ?? 4);
/**
 * The relay's quota per mailbox. The flood fills it either way (it outpaces the UI); a smaller one
 * than the relay's default (10,000) only shortens the drain of the backlog after each flood.
 */
const MAILBOX_MAX = Number(process.env.BENCH_MAILBOX_MAX_MESSAGES ?? 1000);
/** Keypresses at the start of each window, not measured (JIT warm-up; the flood settling). */
const WARMUP = 10;
/** Pause after each frame before the next key (Ink draws at most one frame per 34 ms). */
const SETTLE_MS = 50;
/** A keypress whose frame takes longer than this ends the run (the UI is frozen). */
const KEY_TIMEOUT_MS = 120_000;
/** Deposits each flooder connection keeps in flight. */
const WINDOW = 4;
/** Each flooder connection sends at the relay's rate limit (frames/s), which it never exceeds. */
const RATE = DEFAULTS.rateLimit;
/** A flooder slot waits this long after the relay refused a deposit (QUOTA, RATE_LIMITED). */
const REFUSED_WAIT_MS = 100;
/** The drain of a flood's backlog may take this long before the run gives up. */
const DRAIN_TIMEOUT_MS = 20 * 60_000;
const PASSPHRASE = "bench passphrase";
const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/**
 * A forged Message (PROTOCOL.md §6.3) as test/first-contact.test.ts builds it: a ratchet key,
 * the given counters, and 64 random bytes where the ciphertext and tag go, which cannot verify.
 */
function forged(ratchetKey: Uint8Array, pn: number, n: number): Uint8Array {
  const wire = new Uint8Array(42 + 64);
  const view = new DataView(wire.buffer);
  wire[0] = 0x02;
  wire[1] = 0x01;
  wire.set(ratchetKey, 2);
  view.setUint32(34, pn);
  view.setUint32(38, n);
  wire.set(crypto.getRandomValues(new Uint8Array(64)), 42);
  return wire;
}

interface FloodStats {
  /** Deposits the relay stored. */
  ok: number;
  /** Refused: the mailbox is full (the flood outpaces the UI). */
  quota: number;
  /** Refused: faster than the relay lets one connection send. */
  limited: number;
  /** The flooder's own CPU time, ms. */
  cpuMs: number;
}

/**
 * The flooder (this file run with --flooder URL ADDRESS CONNECTIONS): deposits forgeries into
 * ADDRESS as fast as the relay takes them, until "stop" on stdin; "stats" prints its counts.
 */
async function flooder(url: string, addressHex: string, connections: number): Promise<void> {
  const address = fromHex(addressHex);
  const stats = { ok: 0, quota: 0, limited: 0 };
  const report = () => {
    const cpu = process.cpuUsage();
    const s: FloodStats = { ...stats, cpuMs: (cpu.user + cpu.system) / 1000 };
    process.stdout.write(`${JSON.stringify(s)}\n`);
  };
  // Ratchet keys drawn once (a real key costs more than the deposit); the random tags keep every
  // forgery distinct, and a failed one leaves the receiver's state as it was, so a reused key
  // costs the receiver the same.
  const keys = Array.from({ length: 64 }, () => x25519KeyPair().publicKey);
  const conns = await Promise.all(
    Array.from({ length: connections }, () => RelayConnection.open(url, { heartbeatMs: 0 })),
  );
  let stopping = false;
  let sent = 0;
  // When each connection may send next: at RATE a second, so the relay refuses none as too fast.
  const due = conns.map(() => performance.now());
  const slot = async (conn: RelayConnection, c: number) => {
    while (!stopping) {
      const at = Math.max(performance.now(), due[c]!);
      due[c] = at + 1000 / RATE;
      if (at > performance.now()) await sleep(at - performance.now());
      if (stopping) return;
      const i = sent++;
      const counter = i % 2 === 0 ? 30 : 1000;
      try {
        await conn.deposit(
          address,
          crypto.getRandomValues(new Uint8Array(16)),
          forged(keys[i % keys.length]!, counter, counter),
        );
        stats.ok++;
      } catch (e) {
        if (stopping) return;
        if (e instanceof RelayRequestError && (e.code === "QUOTA" || e.code === "RATE_LIMITED")) {
          if (e.code === "QUOTA") stats.quota++;
          else stats.limited++;
          await sleep(REFUSED_WAIT_MS);
        } else {
          // UNKNOWN_MAILBOX (the mailbox was deleted), a broken connection: the bench cannot go on.
          process.stderr.write(`flooder: ${(e as Error).message}\n`);
          process.exit(1);
        }
      }
    }
  };
  const running = conns.flatMap((conn, c) => Array.from({ length: WINDOW }, () => slot(conn, c)));
  while (stats.ok === 0) await sleep(5);
  process.stdout.write('{"ready":true}\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "stats") report();
    if (line === "stop") break;
  }
  stopping = true;
  for (const c of conns) c.close();
  await Promise.allSettled(running);
  report();
  process.exit(0);
}

/** A running flooder process. */
interface Flooder {
  readonly proc: ChildProcess;
  stats(): Promise<FloodStats>;
  stop(): Promise<FloodStats>;
}

async function startFlooder(url: string, address: Uint8Array): Promise<Flooder> {
  // node with the tsx loader, so `proc` is the flooder itself and its CPU time is its own.
  const proc = spawn(
    process.execPath,
    [
      "--conditions=source",
      "--import",
      "tsx",
      here("./flood-bench.ts"),
      "--flooder",
      url,
      toHex(address),
      `${CONNECTIONS}`,
    ],
    { cwd: here(".."), stdio: ["pipe", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  const exited = new Promise<never>((_, reject) =>
    proc.once("exit", (code, signal) => reject(new Error(`the flooder exited (${code ?? signal})`))),
  );
  exited.catch(() => {});
  const next = async (): Promise<string> => {
    const r = await Promise.race([lines.next(), exited]);
    if (r.done) throw new Error("the flooder closed its output");
    return r.value;
  };
  const ready = await next();
  if (ready !== '{"ready":true}') throw new Error(`the flooder said ${ready}`);
  return {
    proc,
    async stats() {
      proc.stdin!.write("stats\n");
      return JSON.parse(await next()) as FloodStats;
    },
    async stop() {
      proc.stdin!.write("stop\n");
      const s = JSON.parse(await next()) as FloodStats;
      if (proc.exitCode === null && proc.signalCode === null) {
        const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        await new Promise((r) => proc.once("exit", r));
        clearTimeout(timer);
      }
      return s;
    },
  };
}

/** The relay's counters that matter here, from its /metrics. */
async function relayMetrics(port: number): Promise<{ acks: number; stored: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (name: string) => {
    const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    if (!m) throw new Error(`the relay's /metrics has no ${name}`);
    return Number(m[1]);
  };
  return { acks: value("parley_relay_acks_total"), stored: value("parley_relay_stored_messages") };
}

/** Bundles parley as it ships (scripts/bundle.mjs), into a directory of this benchmark's own. */
function bundle(): string {
  const outdir = here("../dist/flood-bench-bundle");
  const r = spawnSync(process.execPath, [here("../scripts/bundle.mjs"), "--outdir", outdir], {
    stdio: "inherit",
  });
  if (r.status !== 0) throw new Error("bundling failed");
  return join(outdir, "parley.js");
}

/** What one window measured. */
interface Window {
  keys: number[];
  wallMs: number;
  acks: number;
  app: number;
  relay: number;
  script: number;
  bench: number;
  flooder: number;
  flood: { ok: number; quota: number; limited: number };
}

interface Totals {
  keys: number[];
  wallMs: number;
  acks: number;
  app: number;
  relay: number;
  script: number;
  bench: number;
  flooder: number;
  flood: { ok: number; quota: number; limited: number };
}

const totals = (): Totals => ({
  keys: [],
  wallMs: 0,
  acks: 0,
  app: 0,
  relay: 0,
  script: 0,
  bench: 0,
  flooder: 0,
  flood: { ok: 0, quota: 0, limited: 0 },
});

function add(t: Totals, w: Window): void {
  t.keys.push(...w.keys);
  t.wallMs += w.wallMs;
  t.acks += w.acks;
  t.app += w.app;
  t.relay += w.relay;
  t.script += w.script;
  t.bench += w.bench;
  t.flooder += w.flooder;
  t.flood.ok += w.flood.ok;
  t.flood.quota += w.flood.quota;
  t.flood.limited += w.flood.limited;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), "parley-flood-bench-"));
  const home = join(tmp, "alice");
  const relay = await startRelay(["--storage", "memory", "--mailbox-max-messages", `${MAILBOX_MAX}`]);
  let ui: ReturnType<typeof pty> | null = null;
  let flood: Flooder | null = null;
  try {
    const url = `ws://127.0.0.1:${relay.port}`;
    const settings: Settings = { relay: url, maxRetentionSeconds: 30 * 86400 };
    const load0 = loadavg()[0]!;
    const started = performance.now();
    const progress = (what: string) =>
      console.error(`${what} (${((performance.now() - started) / 1000).toFixed(0)} s)`);

    // Alice invites Bob, Bob accepts, Alice receives the accept. Bob never writes again, so the
    // first-contact mailbox (whose address the code gives away) stays open.
    const alice = Client.init(resolvePaths(home), PASSPHRASE, "Alice", settings, 10);
    const bob = Client.init(resolvePaths(join(tmp, "bob")), "pw", "Bob", settings, 10);
    const { code } = await alice.invite();
    const firstContact = MailboxKey.deserialize(
      fromHex(alice.store.invitations()[0]!.value.mailboxKey),
    ).address;
    await bob.accept(code, { name: "alice" });
    await alice.sync();
    bob.close();
    alice.close();
    const parley = bundle();

    // Alice's UI, unlocked, on the chat with Bob, connected.
    ui = pty([process.execPath, parley, "--home", home]);
    const p = ui;
    await p.until(/Parley is locked/, performance.now());
    p.write(`${PASSPHRASE}\r`);
    await p.until(new RegExp(`Bob[\\s\\S]*?1 relay connected[\\s\\S]*?${FRAME_END}`), performance.now());
    // Messages the relay holds that are not for Alice (her intro, which Bob has not fetched).
    const resting = (await relayMetrics(relay.port)).stored;
    const appPid = () => childrenOf(p.proc.pid)[0];

    const press = (key: string, pattern: RegExp) => {
      p.output = "";
      const t = performance.now();
      p.write(key);
      return p.until(pattern, t, KEY_TIMEOUT_MS);
    };
    // What the previous window left on the input line.
    let leftOnLine = false;
    const measure = async (seed: number): Promise<Window> => {
      // An empty input line (Ctrl+U), then the keys.
      if (leftOnLine) {
        await press("\u0015", EMPTY_LINE);
        await sleep(SETTLE_MS);
      }
      leftOnLine = true;
      const r = prng(seed);
      let typed = "";
      const keys: number[] = [];
      let before = {
        t: 0,
        m: { acks: 0, stored: 0 },
        app: 0,
        relay: 0,
        script: 0,
        bench: 0,
        flood: null as FloodStats | null,
      };
      const snapshot = async () => {
        const cpu = process.cpuUsage();
        return {
          t: performance.now(),
          m: await relayMetrics(relay.port),
          app: cpuOf(appPid()),
          relay: cpuOf(relay.proc.pid),
          script: cpuOf(p.proc.pid),
          bench: (cpu.user + cpu.system) / 1000,
          flood: flood ? await flood.stats() : null,
        };
      };
      for (let i = 0; i < WARMUP + KEYS; i++) {
        if (i === WARMUP) before = await snapshot();
        const c = ALNUM[r(ALNUM.length)]!;
        typed += c;
        // The last eight characters typed, then the cursor: this key's frame and no earlier one.
        const t = await press(c, lineEndsWith(typed.slice(-8)));
        if (i >= WARMUP) keys.push(t);
        await sleep(SETTLE_MS);
      }
      const after = await snapshot();
      return {
        keys,
        wallMs: after.t - before.t,
        acks: after.m.acks - before.m.acks,
        app: after.app - before.app,
        relay: after.relay - before.relay,
        script: after.script - before.script,
        bench: after.bench - before.bench,
        flooder: after.flood && before.flood ? after.flood.cpuMs - before.flood.cpuMs : 0,
        flood: {
          ok: (after.flood?.ok ?? 0) - (before.flood?.ok ?? 0),
          quota: (after.flood?.quota ?? 0) - (before.flood?.quota ?? 0),
          limited: (after.flood?.limited ?? 0) - (before.flood?.limited ?? 0),
        },
      };
    };

    const idle = totals();
    const flooded = totals();
    const backlogs: number[] = [];
    const drains: number[] = [];
    const line = (w: Window) =>
      `p50 ${median(w.keys).toFixed(1)} ms, p99 ${quantile(w.keys, 0.99).toFixed(1)} ms, max ${Math.max(...w.keys).toFixed(1)} ms`;
    for (let r = 0; r < ROUNDS; r++) {
      const i = await measure(2 * r + 1);
      add(idle, i);
      progress(`idle ${r + 1}/${ROUNDS}: ${line(i)}`);

      flood = await startFlooder(url, firstContact);
      // Under way once the UI acknowledges forgeries.
      const acked = (await relayMetrics(relay.port)).acks;
      const deadline = performance.now() + 60_000;
      while ((await relayMetrics(relay.port)).acks === acked) {
        if (performance.now() > deadline)
          throw new Error("the UI acknowledged no forged delivery within 60 s");
        await sleep(100);
      }
      progress(`flood ${r + 1}/${ROUNDS}: under way`);
      const f = await measure(2 * r + 2);
      progress(`flood ${r + 1}/${ROUNDS}: ${line(f)}; stopping the flood`);
      add(flooded, f);
      await flood.stop();
      flood = null;
      // The next idle window waits until the UI has worked through what the relay still holds.
      const drainStart = performance.now();
      const backlog = (await relayMetrics(relay.port)).stored - resting;
      let reported = drainStart;
      for (let left = backlog; left > 0; left = (await relayMetrics(relay.port)).stored - resting) {
        if (performance.now() - reported > 10_000) {
          progress(`flood ${r + 1}/${ROUNDS}: ${left} forgeries left on the relay`);
          reported = performance.now();
        }
        if (performance.now() - drainStart > DRAIN_TIMEOUT_MS)
          throw new Error(
            `the UI did not work through ${backlog} forged messages in ${DRAIN_TIMEOUT_MS / 1000} s`,
          );
        await sleep(250);
      }
      backlogs.push(backlog);
      drains.push(performance.now() - drainStart);
      // The last "dropped … undecryptable messages" notice away (Esc), so the idle screen is idle.
      p.write(ESC);
      await sleep(500);
      progress(
        `flood ${r + 1}/${ROUNDS}: ${line(f)}; ${((1000 * f.acks) / f.wallMs).toFixed(0)} forged deliveries/s acknowledged; backlog ${backlog} drained in ${((performance.now() - drainStart) / 1000).toFixed(1)} s`,
      );
    }
    await p.quit();

    const ms = (x: number) => (Number.isNaN(x) ? "n/a" : `${x.toFixed(x < 100 ? 1 : 0)} ms`);
    const perSecond = (n: number, t: Totals) => `${((1000 * n) / t.wallMs).toFixed(0)}/s`;
    const core = (cpuMs: number, t: Totals) => `${((100 * cpuMs) / t.wallMs).toFixed(1)}%`;
    const rows: [string, string, string, string][] = [];
    const timed = (what: string, f: (xs: number[]) => number) => {
      const a = f(idle.keys);
      const b = f(flooded.keys);
      rows.push([what, ms(a), ms(b), (b / a).toFixed(2)]);
    };
    timed("keypress to frame p50", median);
    timed("keypress to frame p99", (xs) => quantile(xs, 0.99));
    timed("keypress to frame max", (xs) => Math.max(...xs));
    rows.push([
      "forged deliveries the UI acknowledged",
      perSecond(idle.acks, idle),
      perSecond(flooded.acks, flooded),
      "",
    ]);
    rows.push(["CPU, % of one core: the UI (parley)", core(idle.app, idle), core(flooded.app, flooded), ""]);
    rows.push(["CPU: the relay", core(idle.relay, idle), core(flooded.relay, flooded), ""]);
    rows.push(["CPU: the flooder", "", core(flooded.flooder, flooded), ""]);
    rows.push([
      "CPU: the key generator (this process + script)",
      core(idle.bench + idle.script, idle),
      core(flooded.bench + flooded.script, flooded),
      "",
    ]);
    const header: [string, string, string, string] = ["measure", "idle", "flood", "flood/idle"];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) =>
      `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
    console.log(
      `terminal UI (bundled parley, 80x24 pty) idle and under a flood of forged messages into its first-contact mailbox, ${ROUNDS} rounds of each, alternating`,
    );
    console.log(fmt(header));
    console.log(fmt(widths.map((w) => "-".repeat(w))));
    for (const r of rows) console.log(fmt(r));
    const ratio = (f: (xs: number[]) => number) => f(flooded.keys) / f(idle.keys);
    const within = (x: number) => (x <= 2 ? "yes" : "NO");
    console.log(
      `within 2x of idle (issue 13): p50 ${within(ratio(median))}, p99 ${within(ratio((xs) => quantile(xs, 0.99)))}`,
    );
    console.log(
      `keypresses: ${idle.keys.length} idle, ${flooded.keys.length} under flood (${KEYS} a window, after ${WARMUP} unmeasured), each ${SETTLE_MS} ms after the previous frame; windows: ${(idle.wallMs / 1000).toFixed(1)} s idle, ${(flooded.wallMs / 1000).toFixed(1)} s flood`,
    );
    console.log(
      `flood: ${CONNECTIONS} connections at ${RATE} deposits/s each (the relay's limit), ${WINDOW} in flight each, into a mailbox of at most ${MAILBOX_MAX} messages, forgeries PN = N = 30 and PN = N = 1000 alternately; the relay stored ${perSecond(flooded.flood.ok, flooded)}, refused ${perSecond(flooded.flood.quota, flooded)} as QUOTA (the mailbox full: the flood outpaces the UI) and ${perSecond(flooded.flood.limited, flooded)} as RATE_LIMITED`,
    );
    console.log(
      `backlog left on the relay when each flood stopped: ${backlogs.join(", ")} forgeries, worked through in ${drains.map((d) => (d / 1000).toFixed(1)).join(", ")} s`,
    );
    console.log(
      `load average (1 min) ${load0.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end, on ${availableParallelism()} cores`,
    );
  } finally {
    if (flood) flood.proc.kill("SIGKILL");
    if (ui && ui.proc.exitCode === null) ui.proc.kill("SIGKILL");
    await relay.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--flooder") {
  await flooder(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
} else {
  await main();
}
