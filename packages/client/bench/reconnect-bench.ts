// How soon a live client is back on its relay after the relay comes back (issue 12: "within a
// second"). Each round kills the real relay process (SIGKILL), leaves it down for a random 1–4 s,
// starts it again on the same port with the same data, and times from the moment its port takes
// a TCP connection (polled every 5 ms here) to the client's "connected" relay event. Baseline, in
// the same run: a fresh connection to the running relay (vet, WebSocket, hello, subscribe), the
// floor of any reconnection. Also: the personal relay killed by its pid, to the client connected
// to the one it restarted (that includes starting a relay process).
//   npx tsx --conditions=source packages/client/bench/reconnect-bench.ts   (BENCH_ROUNDS=10)
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client, type RelayState } from "../src/client.js";
import { ensureLocalRelay, localRelayPid } from "../src/local-relay.js";
import { resolvePaths } from "../src/paths.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const RELAY_CLI = fileURLToPath(new URL("../../relay/src/cli.ts", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "parley-reconnect-bench-"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function startRelay(port: number): ChildProcess {
  return spawn(
    process.execPath,
    [
      "--conditions=source",
      "--import",
      "tsx",
      RELAY_CLI,
      "--port",
      String(port),
      "--storage",
      "sqlite",
      "--data-dir",
      join(tmp, "relay"),
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
}

/** Resolves with performance.now() at the first TCP connection the port takes. */
async function portOpens(port: number): Promise<number> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return performance.now();
    await sleep(5);
  }
}

function relayState(c: Client, state: RelayState["state"]): Promise<number> {
  return new Promise((resolve) => {
    const on = (s: RelayState) => {
      if (s.state !== state) return;
      c.off("relay", on);
      resolve(performance.now());
    };
    c.on("relay", on);
  });
}

function exited(p: ChildProcess): Promise<void> {
  return p.exitCode !== null || p.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => p.once("exit", () => r()));
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { p50: at(0.5), max: s[s.length - 1]!, min: s[0]! };
};
const ms = (x: number) => `${x.toFixed(0)} ms`;

async function relayRestarts(): Promise<void> {
  const port = await freePort();
  let relay = startRelay(port);
  await portOpens(port);
  const url = `ws://127.0.0.1:${port}`;
  const client = Client.init(
    resolvePaths(join(tmp, "alice")),
    "pw",
    "Alice",
    { relay: url, maxRetentionSeconds: 30 * 86400 },
    10,
  );
  await client.invite(); // one mailbox to subscribe to
  await client.start();

  // Baseline: a fresh client's first connection and subscription to the running relay.
  const fresh: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const other = Client.open(resolvePaths(join(tmp, "alice")), "pw", {
      relay: url,
      maxRetentionSeconds: 30 * 86400,
    });
    const t = performance.now();
    await other.listen();
    fresh.push(performance.now() - t);
    other.close();
  }

  const back: number[] = [];
  const downFor: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const offline = relayState(client, "offline");
    relay.kill("SIGKILL");
    await exited(relay);
    await offline;
    const down = 1000 + Math.random() * 3000;
    downFor.push(down);
    await sleep(down);
    const connected = relayState(client, "connected");
    relay = startRelay(port);
    const opened = await portOpens(port);
    back.push((await connected) - opened);
  }
  await client.stop();
  client.close();
  relay.kill("SIGTERM");
  await exited(relay);

  const b = stats(back);
  const f = stats(fresh);
  console.log(
    `relay killed and restarted on its port, ${ROUNDS} rounds, down ${ms(Math.min(...downFor))}–${ms(Math.max(...downFor))}:`,
  );
  console.log(`  port open → client connected: p50 ${ms(b.p50)}, max ${ms(b.max)} (min ${ms(b.min)})`);
  console.log(`  baseline, a fresh connection + subscribe: p50 ${ms(f.p50)}, max ${ms(f.max)}`);
  console.log(
    `  ratio p50 ${(b.p50 / f.p50).toFixed(1)}×; worst case within a second: ${b.max < 1000 ? "yes" : "NO"}`,
  );
}

async function personalRelayRestarts(): Promise<void> {
  const env = {
    ...process.env,
    XDG_DATA_HOME: join(tmp, "xdg"),
    PARLEY_LOCAL_RELAY_PORT: String(await freePort()),
  };
  const { url } = await ensureLocalRelay(env);
  const client = Client.init(
    resolvePaths(join(tmp, "bob")),
    "pw",
    "Bob",
    { relay: url, localRelay: true, maxRetentionSeconds: 30 * 86400 },
    10,
  );
  await client.invite();
  await client.start({ env });
  const times: number[] = [];
  const rounds = Math.max(1, Math.ceil(ROUNDS / 2));
  for (let i = 0; i < rounds; i++) {
    const pid = localRelayPid(env)!;
    const connected = relayState(client, "connected");
    const t = performance.now();
    process.kill(pid, "SIGKILL");
    times.push((await connected) - t);
  }
  await client.stop();
  client.close();
  const pid = localRelayPid(env);
  if (pid !== null) process.kill(pid, "SIGTERM");
  const s = stats(times);
  console.log(`personal relay killed by its pid, ${rounds} rounds:`);
  console.log(
    `  kill → restarted by the client and connected: p50 ${ms(s.p50)}, max ${ms(s.max)} (includes starting the relay process)`,
  );
}

try {
  await relayRestarts();
  await personalRelayRestarts();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
