// pnpm bench:client — what the client core costs on top of the bare protocol, measured in the
// same run against the same relay process: send (ratchet step + SQLite transaction + durable
// deposit) and receive (decrypt + transaction + ack), each as a ratio to a baseline that does the
// protocol work and the relay round trip with no store. Also: unlocking a store (scrypt, N = 2^17).
// Then groups (group-bench.ts): one message to a group of 50 against 49 sequential 1:1 sends.
//
//   BENCH_MESSAGES (default 400), BENCH_ROUNDS (default 3, both sections), BENCH_GROUP_SIZE
//   (members with the sender, default 50; 0 skips the group section), BENCH_GROUP_MESH=1 and
//   BENCH_GROUP_RECEIVERS (processes, default 7; see group-bench.ts), BENCH_RELAY_STORAGE (the
//   relay's --storage: sqlite, the default, or memory, to see what its durable commits cost).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  acceptInvitation,
  createInvitation,
  decodeInvitation,
  decodePayload,
  encodePayload,
  Identity,
  InvitationBook,
  MailboxKey,
  newMessageId,
} from "@parley/protocol";
import { Client } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import { RelayConnection } from "../src/relay-connection.js";
import { Store } from "../src/store.js";
import { GROUP, groupBench, groupTable } from "./group-bench.js";

const STORAGE = process.env.BENCH_RELAY_STORAGE ?? "sqlite";
const N = Number(process.env.BENCH_MESSAGES ?? 400);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RELAY_CLI = fileURLToPath(new URL("../../relay/src/cli.ts", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "parley-client-bench-"));

async function startRelay(): Promise<{ url: string; pid: number | undefined; stop: () => void }> {
  const proc = spawn(
    process.execPath,
    [
      "--conditions=source",
      "--import",
      "tsx",
      RELAY_CLI,
      "--port",
      "0",
      "--storage",
      STORAGE,
      "--data-dir",
      join(tmp, "relay"),
      "--rate-limit",
      "100000",
      // The group section's 50 clients all come from 127.0.0.1, each subscribing to some 50
      // mailboxes: the per-source limits, made for strangers, would pace their start.
      "--max-connections-per-source",
      "1000",
      "--proof-rate",
      "100000",
      "--proof-rate-per-source",
      "100000",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+).*"msg":"relay listening"/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once("exit", () => reject(new Error(`relay exited:\n${out}`)));
  });
  return { url: `ws://127.0.0.1:${port}`, pid: proc.pid, stop: () => proc.kill("SIGTERM") };
}

const text = (i: number) => `benchmark message number ${i}, of a typical chat length`;

/** The protocol alone: encrypt + deposit (awaiting the durable ok), then receive: decrypt + ack. */
async function baseline(url: string): Promise<{ send: number; receive: number }> {
  const alice = Identity.generate();
  const bob = Identity.generate();
  const aliceBox = MailboxKey.generate();
  const bobBox = MailboxKey.generate();
  const a = await RelayConnection.open(url);
  const b = await RelayConnection.open(url);
  await a.createMailbox(aliceBox);
  await b.createMailbox(bobBox);
  const book = new InvitationBook();
  const { code, pending } = createInvitation(alice, { relayUrl: url, mailbox: aliceBox.address });
  book.add(pending);
  const first = encodePayload({ type: "text", id: newMessageId(), sentAt: Date.now(), text: "hi" });
  const accepted = acceptInvitation(bob, decodeInvitation(code), {
    mailbox: bobBox.address,
    relayUrl: url,
    plaintext: first,
    kemPublicKey: pending.kemPublicKey,
  });
  const opened = book.accept(alice, accepted.message);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const wire = opened.session.encrypt(
      encodePayload({ type: "text", id: newMessageId(), sentAt: Date.now(), text: text(i) }),
    );
    await a.deposit(bobBox.address, newMessageId(), wire);
  }
  const send = N / ((performance.now() - t0) / 1000);
  let got = 0;
  const t1 = performance.now();
  await new Promise<void>((resolve) => {
    b.on("deliver", (f) => {
      decodePayload(accepted.session.decrypt(f.ciphertext));
      void b.ack(f.address, f.messageId).then(() => {
        if (++got === N) resolve();
      });
    });
    void b.subscribe(bobBox);
  });
  const receive = N / ((performance.now() - t1) / 1000);
  a.close();
  b.close();
  return { send, receive };
}

/** The client core: send() one message at a time, then one sync() receiving all of them. */
async function client(url: string, round: number): Promise<{ send: number; receive: number }> {
  const settings = { relay: url, maxRetentionSeconds: 30 * 86400 };
  const alice = Client.init(resolvePaths(join(tmp, `a${round}`)), "pw", "Alice", settings, 10);
  const bob = Client.init(resolvePaths(join(tmp, `b${round}`)), "pw", "Bob", settings, 10);
  const { code } = await alice.invite();
  await bob.accept(code, { name: "alice" });
  await alice.sync({ quietMs: 50 });
  await bob.sync({ quietMs: 50 });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await alice.send("Bob", [text(i)]);
  const send = N / ((performance.now() - t0) / 1000);
  let got = 0;
  bob.on("event", (e) => {
    if (e.type === "message") got++;
  });
  const t1 = performance.now();
  // The sync's own quiet period (50 ms here) is included: it is part of what a user waits for.
  await bob.sync({ quietMs: 50 });
  const receive = got / ((performance.now() - t1) / 1000);
  if (got !== N) throw new Error(`bob received ${got} of ${N}`);
  alice.close();
  bob.close();
  return { send, receive };
}

function unlockMs(): number {
  const paths = resolvePaths(join(tmp, "unlock"));
  Client.init(paths, "a passphrase", "U", { maxRetentionSeconds: 1 }).close();
  const t = performance.now();
  Store.open(paths.database, "a passphrase").close();
  return performance.now() - t;
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

const relay = await startRelay();
try {
  const base = { send: [] as number[], receive: [] as number[] };
  const core = { send: [] as number[], receive: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    // Interleaved, so that both see the same machine load.
    const b = await baseline(relay.url);
    const c = await client(relay.url, r);
    base.send.push(b.send);
    base.receive.push(b.receive);
    core.send.push(c.send);
    core.receive.push(c.receive);
  }
  const row = (what: string, c: number[], b: number[]) =>
    `| ${what.padEnd(8)} | ${median(c).toFixed(0).padStart(10)} | ${median(b).toFixed(0).padStart(14)} | ${(median(c) / median(b)).toFixed(2).padStart(5)} |`;
  console.log(
    `client core vs bare protocol, ${N} messages, median of ${ROUNDS} interleaved rounds, ${STORAGE} relay`,
  );
  console.log("| path     | client msg/s | baseline msg/s | ratio |");
  console.log("| -------- | ------------ | -------------- | ----- |");
  console.log(row("send", core.send, base.send));
  console.log(row("receive", core.receive, base.receive));
  console.log(`unlock (scrypt N=2^17, r=8, p=1): ${unlockMs().toFixed(0)} ms`);
  if (GROUP > 1) {
    console.log("");
    const g = await groupBench(relay.url, join(tmp, "group"), ROUNDS, relay.pid, STORAGE);
    for (const line of groupTable(g)) console.log(line);
  }
} finally {
  relay.stop();
  rmSync(tmp, { recursive: true, force: true });
}
