// The group section of pnpm bench:client (issue 14): one message to a group of GROUP members
// (default 50) against the same reach by 1:1 messages, through one local relay, measured in the
// same run. Groups are pairwise fan-out (PROTOCOL.md §13.3): the sender encrypts one copy per
// member over its session with it and deposits each, so the question is what that costs against
// the member count of ordinary sends, each its own transaction and deposit.
//
// Setup: the sender has the other members as contacts (one invitation each, accepted, and one
// message each way, so that no session is still in its first messages), creates the group, and
// every member joins (receiving the create) and makes the invitations it owes the members who
// joined before it (§13.4). With BENCH_GROUP_MESH=1 the sender passes them on until every pair of
// members has its session, as in a group that has run for a while; without, the sender never
// receives them and nothing more happens. The members' clients then move to child processes
// (group-receivers.ts), each client in live mode on its own connection, as the terminal UI runs;
// the sender stays here, alone, so that this process's CPU time is the sender's. The sender does
// not receive during the run: its mailboxes only collect the receipts.
//
// Each round measures, in alternating order: (group) one send() to the group, and (1:1) one
// send() to each member in turn, each awaited; from the first send() to the moment the last
// member's client emits the message, and to the moment the last send() resolved (every copy
// stored by the relay). One round before them is not counted (JIT, first messages after the
// setup). Between measurements every receiver's receipts go out, outside the clock, so that no
// measurement pays for the one before.
import { type ChildProcess, fork } from "node:child_process";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client, type ClientEvent } from "../src/client.js";
import { ClientError } from "../src/errors.js";
import { resolvePaths } from "../src/paths.js";
import type { ReceiverCommand, ReceiverReport } from "./group-receivers.js";
import { cpuOf, median, sleep } from "./pty.js";

/** Members of the group, the sender included. */
export const GROUP = Number(process.env.BENCH_GROUP_SIZE ?? 50);
/**
 * BENCH_GROUP_MESH=1: every pair of members gets its session first (1,176 introductions for 50,
 * some 3.5 minutes here), as in a group that has run for a while. Receiving then costs each member
 * more (its client reads every contact record per group message); sending does not change.
 */
const MESH = process.env.BENCH_GROUP_MESH === "1";
/** The group's name, as the sender and (since no conversation of theirs looks like it) every member call it. */
const GROUP_NAME = "Bench group";
const PASSPHRASE = "pw";
/** scrypt cost of the stores (the tests' 2^10): unlocking is not what is measured here. */
const LOG_N = 10;
/** The whole mesh of introductions may take this long before the run gives up. */
const MESH_TIMEOUT_MS = 15 * 60_000;
/**
 * Processes the members' clients are dealt to. Each process receives on one event loop, where a
 * client's store commit waits for the disk; in one process the 49 copies of a group message,
 * which arrive together, would wait for each other's commits, as 49 devices would not.
 */
const RECEIVER_PROCESSES = Number(process.env.BENCH_GROUP_RECEIVERS ?? 7);
const RECEIVERS = fileURLToPath(new URL("./group-receivers.ts", import.meta.url));

const now = () => performance.timeOrigin + performance.now();
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

/** One measurement: times in ms from the first send(). */
interface Sample {
  /** Until the last member's client emitted the message. */
  allReceivedMs: number;
  /** Until the last send() resolved (every copy stored by the relay). */
  sentMs: number;
  /** The sender's CPU time over its send() calls. */
  senderCpuMs: number;
  /** The receivers' processes until the last received: CPU time, all together. */
  receiversCpuMs: number;
  /** The busiest receiver process: the share of the time its event loop was not idle. */
  receiversBusy: number;
  /** The relay process's CPU time until the last received (/proc; 10 ms ticks). */
  relayCpuMs: number;
}

export interface GroupResult {
  members: number;
  rounds: number;
  /** The relay's --storage. */
  storage: string;
  receiverProcesses: number;
  group: Sample[];
  direct: Sample[];
  setup: { contactsMs: number; createMs: number; meshMs: number; mesh: boolean };
  receiverWarnings: number;
  /** The machine's 1-minute load average as the measurements began and ended (others' work shows here). */
  load: [number, number];
}

/** One receivers' process, one command at a time. */
class Receivers {
  private readonly proc: ChildProcess;
  private readonly queue: ((r: ReceiverReport) => void)[] = [];
  private failure: Error | null = null;

  constructor() {
    this.proc = fork(RECEIVERS, [], {
      execArgv: ["--conditions=source", "--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.proc.on("message", (r: ReceiverReport) => {
      if (r.type === "failed") this.fail(new Error(`group receivers failed: ${r.message}`));
      else this.queue.shift()?.(r);
    });
    this.proc.once("exit", (code) => this.fail(new Error(`group receivers exited (${code})`)));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const waiting of this.queue.splice(0)) waiting({ type: "failed", message: e.message });
  }

  /** The next report, which must be of `type` (reports come in the order of the commands). */
  next<T extends ReceiverReport["type"]>(type: T): Promise<Extract<ReceiverReport, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.queue.push((r) => {
        if (r.type === type) resolve(r as Extract<ReceiverReport, { type: T }>);
        else reject(this.failure ?? new Error(`group receivers answered ${r.type}, not ${type}`));
      });
    });
  }

  ask<T extends ReceiverReport["type"]>(
    c: ReceiverCommand,
    type: T,
  ): Promise<Extract<ReceiverReport, { type: T }>> {
    const answer = this.next(type);
    this.proc.send(c);
    return answer;
  }

  kill(): void {
    this.proc.removeAllListeners("exit");
    if (this.proc.exitCode === null) this.proc.kill("SIGTERM");
  }
}

/** Resolves once `done()` holds, checked every 200 ms; says what is left on stderr now and then. */
async function until(what: string, done: () => string | null, timeoutMs: number): Promise<void> {
  const start = Date.now();
  let said = start;
  for (;;) {
    const left = done();
    if (left === null) return;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: gave up after ${timeoutMs} ms (${left})`);
    if (Date.now() - said > 10_000) {
      process.stderr.write(`  ${what}: ${left}\n`);
      said = Date.now();
    }
    await sleep(200);
  }
}

/**
 * Connects `c` for the first time, which reads the relay's transparency statement over HTTP, one
 * client at a time. Tried twice: fetch() may send the request on a kept-alive socket that the relay
 * closed (after 5 s idle) while this process was busy (the stores' key derivation blocks it), and
 * then fails with "other side closed", which the client reports as UNREACHABLE.
 */
async function vetted(c: Client, url: string): Promise<void> {
  try {
    await c.connect(url);
  } catch (e) {
    if (!(e instanceof ClientError && e.code === "UNREACHABLE")) throw e;
    await c.connect(url);
  }
}

/** Syncs `c` and counts the events of that sync matching `pred`. */
async function heard(c: Client, pred: (e: ClientEvent) => boolean): Promise<number> {
  let n = 0;
  const on = (e: ClientEvent) => {
    if (pred(e)) n++;
  };
  c.on("event", on);
  try {
    await c.sync({ quietMs: 200 });
  } finally {
    c.off("event", on);
  }
  return n;
}

const text = (what: string, round: number) =>
  `benchmark ${what} message of round ${round}, of a typical chat length`;

/**
 * Sets up the group (see the top of this file) in `dir` against the relay at `url`, then measures
 * `rounds` rounds; `relayPid` is the relay process, whose CPU time is reported.
 */
export async function groupBench(
  url: string,
  dir: string,
  rounds: number,
  relayPid: number | undefined,
  storage: string,
): Promise<GroupResult> {
  const settings = { relay: url, maxRetentionSeconds: 30 * 86400 };
  const home = (i: number) => join(dir, `m${i}`);
  const sender = Client.init(resolvePaths(home(0)), PASSPHRASE, "Sender", settings, LOG_N);
  const names = Array.from({ length: GROUP - 1 }, (_, i) => `Member${String(i + 1).padStart(2, "0")}`);
  const members = names.map((n, i) => Client.init(resolvePaths(home(i + 1)), PASSPHRASE, n, settings, LOG_N));
  const receivers: Receivers[] = [];
  try {
    // Contacts: one invitation each, accepted; the sender receives the acceptances in one sync,
    // each member then the sender's intro, and writes once to it: both sides have turned. The
    // members work side by side where the sender does not take part, as 49 people would.
    let t = performance.now();
    for (const c of [sender, ...members]) await vetted(c, url);
    for (const m of members) {
      const { code } = await sender.invite();
      await m.accept(code, { name: "Sender" });
    }
    await sender.sync({ quietMs: 200 });
    await Promise.all(
      members.map(async (m) => {
        await m.sync({ quietMs: 50 });
        await m.send("Sender", ["warm"]);
      }),
    );
    const warm = await heard(sender, (e) => e.type === "message" && e.text === "warm");
    if (warm !== members.length) throw new Error(`the sender heard ${warm} of ${members.length} members`);
    const contacts = sender.contacts().map((c) => c.contact);
    const missing = names.filter((n) => !contacts.includes(n));
    if (missing.length > 0)
      throw new Error(`the sender has no contact ${missing.join(", ")} after the setup`);
    const contactsMs = performance.now() - t;

    // The group: every member receives the create, and makes the invitations it owes the
    // members who joined before it (§13.4), sent to the sender to pass on.
    t = performance.now();
    await sender.createGroup(GROUP_NAME, names);
    await Promise.all(members.map((m) => m.sync({ quietMs: 50 })));
    const createMs = performance.now() - t;

    // With MESH, the sender passes them on and every pair of members gets its session; without,
    // the sender never receives them (it does not receive during the run), and nothing changes.
    t = performance.now();
    if (MESH) {
      await sender.start();
      for (const m of members) await m.start();
      await until(
        "introductions",
        () => {
          const pending = members.reduce((n, m) => n + (m.groups()[0]?.pending ?? GROUP), 0);
          return pending === 0 ? null : `${pending / 2} sessions between members still to come`;
        },
        MESH_TIMEOUT_MS,
      );
      await sender.stop();
    }
    const meshMs = performance.now() - t;
    for (const m of members) {
      await m.stop();
      m.close();
    }
    members.length = 0;

    // The members, dealt round-robin to the receivers' processes, which open them in parallel.
    for (let i = 0; i < Math.min(RECEIVER_PROCESSES, names.length); i++) receivers.push(new Receivers());
    const homes = names.map((_, i) => home(i + 1));
    await Promise.all(
      receivers.map((r, k) =>
        r.ask(
          {
            type: "open",
            homes: homes.filter((_, i) => i % receivers.length === k),
            passphrase: PASSPHRASE,
            relay: url,
          },
          "ready",
        ),
      ),
    );
    const settle = async () =>
      (await Promise.all(receivers.map((r) => r.ask({ type: "settle" }, "settled")))).reduce(
        (n, s) => n + s.warnings,
        0,
      );
    await settle();

    const measure = async (kind: "group" | "direct", round: number): Promise<Sample> => {
      const tag = text(kind, round);
      await Promise.all(
        receivers.map((r) => r.ask({ type: "expect", tag, group: kind === "group" }, "expecting")),
      );
      const received = Promise.all(receivers.map((r) => r.next("received")));
      // Connected before the clock starts, as in live mode (a sync ends by disconnecting).
      await sender.connect(url);
      const relay0 = cpuOf(relayPid);
      const cpu0 = process.cpuUsage();
      const t0 = now();
      const statuses =
        kind === "group" ? await sender.send(GROUP_NAME, [tag]) : await sendEach(sender, names, tag);
      const sentMs = now() - t0;
      const senderCpuMs = cpuMs(process.cpuUsage(cpu0));
      const got = await received;
      const relayCpuMs = cpuOf(relayPid) - relay0;
      const notStored = statuses.filter((s) => s.status !== "stored");
      if (notStored.length > 0)
        throw new Error(`${kind}: ${notStored.length} send(s) not stored by the relay`);
      return {
        allReceivedMs: Math.max(...got.map((g) => g.at)) - t0,
        sentMs,
        senderCpuMs,
        receiversCpuMs: got.reduce((n, g) => n + g.cpuMs, 0),
        receiversBusy: Math.max(...got.map((g) => g.busy)),
        relayCpuMs,
      };
    };

    const result: GroupResult = {
      members: GROUP,
      rounds,
      storage,
      receiverProcesses: receivers.length,
      group: [],
      direct: [],
      setup: { contactsMs, createMs, meshMs, mesh: MESH },
      receiverWarnings: 0,
      load: [loadavg()[0]!, 0],
    };
    for (let round = 0; round <= rounds; round++) {
      // Alternating order, so that neither always runs right after the other's receipts.
      const order = round % 2 === 0 ? (["group", "direct"] as const) : (["direct", "group"] as const);
      for (const kind of order) {
        const sample = await measure(kind, round);
        if (round > 0) result[kind].push(sample);
        result.receiverWarnings = await settle();
      }
    }
    result.load[1] = loadavg()[0]!;
    await Promise.all(receivers.map((r) => r.ask({ type: "close" }, "closed")));
    return result;
  } finally {
    for (const r of receivers) r.kill();
    for (const m of members) {
      await m.stop();
      m.close();
    }
    await sender.stop();
    sender.close();
  }
}

/** One send() to each contact in turn, each awaited. */
async function sendEach(sender: Client, names: string[], tag: string) {
  const out = [];
  for (const n of names) out.push(...(await sender.send(n, [tag])));
  return out;
}

/** The group section's table (medians). */
export function groupTable(g: GroupResult): string[] {
  const n = g.members - 1;
  const med = (xs: Sample[], f: (s: Sample) => number) => median(xs.map(f));
  const cells = (xs: Sample[]) => [
    med(xs, (s) => s.allReceivedMs),
    med(xs, (s) => s.sentMs),
    med(xs, (s) => s.senderCpuMs),
    med(xs, (s) => s.receiversCpuMs),
    med(xs, (s) => s.receiversBusy) * 100,
    med(xs, (s) => s.relayCpuMs),
  ];
  const group = cells(g.group);
  const direct = cells(g.direct);
  const fmt = (xs: number[], digits: number[]) =>
    xs.map((x, i) => x.toFixed(digits[i]).padStart([15, 10, 13, 13, 18, 12][i]!)).join(" | ");
  const row = (what: string, xs: number[], digits: number[]) => `| ${what.padEnd(21)} | ${fmt(xs, digits)} |`;
  const ms = [0, 0, 1, 0, 0, 0];
  const s = g.setup;
  return [
    `group of ${g.members} vs ${n} sequential 1:1 sends, one ${g.storage} relay, median of ${g.rounds} alternating rounds;`,
    `receivers: ${n} clients in live mode in ${g.receiverProcesses} child processes; ${availableParallelism()} cores, ` +
      `load average ${g.load[0].toFixed(1)} then ${g.load[1].toFixed(1)}; ms from the first send()`,
    "| path                  | all received ms | sent ms    | sender CPU ms | receivers CPU | busiest receiver % | relay CPU ms |",
    "| --------------------- | --------------- | ---------- | ------------- | ------------- | ------------------ | ------------ |",
    row("1 group message", group, ms),
    row(`${n} 1:1 messages`, direct, ms),
    row(
      "ratio group / 1:1",
      group.map((x, i) => x / direct[i]!),
      [2, 2, 2, 2, 2, 2],
    ),
    `sender CPU per group message: ${group[2]!.toFixed(1)} ms; per 1:1 message: ${(direct[2]! / n).toFixed(2)} ms`,
    `setup: ${n} contacts (invitation, acceptance, one message each way) in ${(s.contactsMs / 1000).toFixed(1)} s, ` +
      `the group created and joined in ${(s.createMs / 1000).toFixed(1)} s` +
      (s.mesh
        ? `, ${(n * (n - 1)) / 2} sessions between members by introduction in ${(s.meshMs / 1000).toFixed(1)} s`
        : "; members have no sessions with each other (BENCH_GROUP_MESH=1 makes them)") +
      (g.receiverWarnings > 0 ? `; the receivers warned ${g.receiverWarnings} time(s)` : ""),
  ];
}
