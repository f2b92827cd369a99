// pnpm bench:files — a file's upload and download through a local relay process, as a ratio to
// pushing the same bytes over a bare `ws` connection in the same run (issue 15: aim for 0.5× or
// better). The client side is this process (Alice's sendFile, Bob's fetchFile: reading, hashing,
// sealing, the store's records, writing and checking); the far end is a relay process, or for
// the baseline a bare `ws` server process (files-bare-server.ts) that counts put frames and
// answers get frames with a chunk-sized reply. The baseline keeps as many chunks in flight as the
// client does at most: UPLOAD_IN_FLIGHT puts on upload (chunk-pipeline.ts), READ_AHEAD gets on
// download (file-download.ts), in frames the size of a full putChunk / chunk reply.
// Rounds alternate relay and baseline so both see the same machine load; medians are printed.
//
//   BENCH_FILE_MIB (default 100; 1024 for the issue's "peak RSS under 200 MiB for a 1 GiB file"),
//   BENCH_ROUNDS (default 3), BENCH_RELAY_STORAGE (the relay's --storage: sqlite, the default,
//   or memory, or both as "sqlite,memory": each gets its own relay process and rounds),
//   BENCH_CPU_PROF (a directory: the relay and bare server write V8 CPU profiles there, as
//   `node --cpu-prof` does, and this process one of each relay upload and download),
//   BENCH_FILE_WORK=caller (the client's chunk crypto in its main thread instead of its worker).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FILE_CHUNK_BYTES, fileChunkCount, SEALED_CHUNK_BYTES } from "@parley/protocol";
import { WebSocket } from "ws";
import { Client } from "../src/client.js";
import { UPLOAD_IN_FLIGHT } from "../src/core/chunk-pipeline.js";
import { READ_AHEAD } from "../src/core/file-download.js";
import { fileWork, inlineWork, setFileWork } from "../src/core/file-work.js";
import { resolvePaths } from "../src/paths.js";

const MiB = 1024 * 1024;
const FILE_MIB = Number(process.env.BENCH_FILE_MIB ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const STORAGES = (process.env.BENCH_RELAY_STORAGE ?? "sqlite").split(",").map((s) => s.trim());
const PROFILE_DIR = process.env.BENCH_CPU_PROF;
const PROFILE = PROFILE_DIR ? ["--cpu-prof", "--cpu-prof-dir", PROFILE_DIR] : [];
const SIZE = FILE_MIB * MiB;
const CHUNKS = fileChunkCount(SIZE);
/** A putChunk frame (header 6, blob id 32, write token 32, index 4) and a chunk reply's, about. */
const FRAME_BYTES = 6 + 32 + 32 + 4 + SEALED_CHUNK_BYTES;
/** What the client keeps in flight, at most. */
const DOWNLOAD_IN_FLIGHT = READ_AHEAD;
const CLK_TCK = 100;
const RELAY_CLI = fileURLToPath(new URL("../../relay/src/cli.ts", import.meta.url));
const BARE_SERVER = fileURLToPath(new URL("./files-bare-server.ts", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "parley-files-bench-"));

interface Child {
  readonly pid: number;
  readonly port: number;
  /** SIGTERM, resolved once the process is gone (before its data directory is removed). */
  stop(): Promise<void>;
}

/** Starts a node process through tsx; resolves when `ready` matches its stdout. */
async function start(args: string[], ready: RegExp): Promise<Child> {
  const proc = spawn(process.execPath, ["--conditions=source", "--import", "tsx", ...PROFILE, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once("exit", () => reject(new Error(`${args[0]} exited:\n${out}`)));
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  return {
    pid: proc.pid!,
    port,
    stop: () => {
      proc.kill("SIGTERM");
      return exited;
    },
  };
}

function startRelay(storage: string): Promise<Child> {
  // Room for the file sealed, twice over (a round's blob is deleted by the fetch's blobDone).
  const blobBytes = CHUNKS * SEALED_CHUNK_BYTES;
  return start(
    [
      RELAY_CLI,
      "--port",
      "0",
      "--storage",
      storage,
      "--data-dir",
      join(tmp, `relay-${storage}`),
      // The default 8 MiB/s per connection is a limit for strangers; the bench measures the path.
      "--upload-rate",
      "64GiB",
      "--rate-limit",
      "1000000",
      "--max-blob-bytes",
      String(blobBytes),
      "--max-blob-storage",
      String(2 * blobBytes),
    ],
    /"port":(\d+).*"msg":"relay listening"/,
  );
}

/** CPU milliseconds (user + system) another process has used so far. */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/** Peak resident set of another process so far, in MiB (VmHWM). */
function peakRssMiBOf(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const ownPeakRssMiB = () => process.resourceUsage().maxRSS / 1024;

interface Sample {
  /** MiB/s of file bytes. */
  readonly rate: number;
  /** CPU ms per MiB in this process (the client, or the baseline's load generator). */
  readonly nearCpu: number;
  /** CPU ms per MiB in the far process (the relay, or the bare server). */
  readonly farCpu: number;
}

/** Runs `run`, with BENCH_CPU_PROF writing this process's CPU profile of it to NAME.cpuprofile. */
async function profiled(name: string, run: () => Promise<void>): Promise<void> {
  if (!PROFILE_DIR) return run();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  try {
    await run();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(join(PROFILE_DIR, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

/** Times `run`, with the CPU both processes spent on it. */
async function measure(farPid: number, run: () => Promise<void>): Promise<Sample> {
  const near0 = ownCpuMs();
  const far0 = cpuMsOf(farPid);
  const t0 = performance.now();
  await run();
  const s = (performance.now() - t0) / 1000;
  return {
    rate: FILE_MIB / s,
    nearCpu: (ownCpuMs() - near0) / FILE_MIB,
    farCpu: (cpuMsOf(farPid) - far0) / FILE_MIB,
  };
}

/** The random file, written a MiB at a time so that making it adds nothing to this process's peak RSS. */
function makeFile(): string {
  const path = join(tmp, "payload.bin");
  for (let left = SIZE; left > 0; left -= MiB) appendFileSync(path, randomBytes(Math.min(MiB, left)));
  return path;
}

/** A bare `ws` connection with requests matched to replies by the index in byte 1…4. */
async function bareConnection(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { maxPayload: 2 * FRAME_BYTES });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  const waiting = new Map<number, (data: Buffer) => void>();
  ws.on("message", (data: Buffer) => {
    const index = data.readUInt32BE(1);
    waiting.get(index)?.(data);
    waiting.delete(index);
  });
  const request = (frame: Buffer, index: number) =>
    new Promise<Buffer>((resolve) => {
      waiting.set(index, resolve);
      ws.send(frame);
    });
  return { request, close: () => ws.close() };
}

/** The baseline upload: CHUNKS put frames, UPLOAD_IN_FLIGHT at a time, each awaiting its ack. */
async function bareUpload(port: number): Promise<void> {
  const conn = await bareConnection(port);
  const frame = Buffer.alloc(FRAME_BYTES, 0xa5);
  frame[0] = 1;
  let next = 0;
  const worker = async () => {
    while (next < CHUNKS) {
      const i = next++;
      const f = Buffer.from(frame); // a fresh frame per chunk, as a sealed chunk is
      f.writeUInt32BE(i, 1);
      await conn.request(f, i);
    }
  };
  await Promise.all(Array.from({ length: UPLOAD_IN_FLIGHT }, worker));
  conn.close();
}

/** The baseline download: CHUNKS get frames, DOWNLOAD_IN_FLIGHT ahead, replies taken in order. */
async function bareDownload(port: number): Promise<void> {
  const conn = await bareConnection(port);
  const ahead = new Map<number, Promise<Buffer>>();
  const ask = (i: number) => {
    if (i >= CHUNKS || ahead.has(i)) return;
    const f = Buffer.alloc(5);
    f[0] = 2;
    f.writeUInt32BE(i, 1);
    ahead.set(i, conn.request(f, i));
  };
  let bytes = 0;
  for (let i = 0; i < CHUNKS; i++) {
    for (let k = i; k < i + DOWNLOAD_IN_FLIGHT; k++) ask(k);
    bytes += (await ahead.get(i)!).length;
    ahead.delete(i);
  }
  if (bytes !== CHUNKS * FRAME_BYTES) throw new Error(`bare download got ${bytes} bytes`);
  conn.close();
}

async function clientPair(url: string, storage: string): Promise<[Client, Client]> {
  const settings = { relay: url, maxRetentionSeconds: 30 * 86400 };
  const alice = Client.init(resolvePaths(join(tmp, `alice-${storage}`)), "pw", "Alice", settings, 10);
  const bob = Client.init(resolvePaths(join(tmp, `bob-${storage}`)), "pw", "Bob", settings, 10);
  const { code } = await alice.invite();
  await bob.accept(code, { name: "alice" });
  await alice.sync({ quietMs: 50 });
  await bob.sync({ quietMs: 50 });
  return [alice, bob];
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

type Path = "relay upload" | "relay download" | "bare upload" | "bare download";

interface Result {
  readonly storage: string;
  readonly samples: Record<Path, Sample[]>;
  /** fetchFile's time after its last chunk was written (fsync, hash check, rename, blobDone), ms. */
  readonly fetchTailMs: number[];
  readonly relayPeakRss: number;
  readonly barePeakRss: number;
}

async function benchStorage(storage: string, file: string): Promise<Result> {
  const relay = await startRelay(storage);
  const bare = await start([BARE_SERVER, String(FRAME_BYTES)], /"port":(\d+)/);
  const samples: Record<Path, Sample[]> = {
    "relay upload": [],
    "relay download": [],
    "bare upload": [],
    "bare download": [],
  };
  const fetchTailMs: number[] = [];
  try {
    const [alice, bob] = await clientPair(`ws://127.0.0.1:${relay.port}`, storage);
    const out = join(tmp, "fetched");
    for (let r = 0; r < ROUNDS; r++) {
      samples["bare upload"].push(await measure(bare.pid, () => bareUpload(bare.port)));
      let id = "";
      samples["relay upload"].push(
        await measure(relay.pid, () =>
          profiled(`client-${storage}-upload-${r + 1}`, async () => {
            id = (await alice.sendFile("Bob", file)).id;
          }),
        ),
      );
      // Not timed: the offer is a ratchet message like any other; bench:client measures those.
      await bob.sync({ quietMs: 50 });
      if (!bob.files().some((f) => f.id === id)) throw new Error(`round ${r + 1}: Bob got no offer of ${id}`);
      samples["bare download"].push(await measure(bare.pid, () => bareDownload(bare.port)));
      mkdirSync(out, { recursive: true });
      let lastChunkAt = 0;
      let fetchedAt = 0;
      samples["relay download"].push(
        await measure(relay.pid, () =>
          profiled(`client-${storage}-download-${r + 1}`, async () => {
            await bob.fetchFile(id, out, (done, total) => {
              if (done === total) lastChunkAt = performance.now();
            });
            fetchedAt = performance.now();
          }),
        ),
      );
      fetchTailMs.push(fetchedAt - lastChunkAt);
      rmSync(out, { recursive: true, force: true });
      process.stderr.write(`${storage}: round ${r + 1} of ${ROUNDS} done\n`);
    }
    alice.close();
    bob.close();
    return {
      storage,
      samples,
      fetchTailMs,
      relayPeakRss: peakRssMiBOf(relay.pid),
      barePeakRss: peakRssMiBOf(bare.pid),
    };
  } finally {
    await Promise.all([relay.stop(), bare.stop()]);
  }
}

function table(r: Result): string[] {
  const m = (p: Path, k: keyof Sample) => median(r.samples[p].map((s) => s[k]));
  const row = (p: Path, base: Path | null) =>
    `| ${p.padEnd(14)} | ${m(p, "rate").toFixed(1).padStart(6)} | ${
      base ? `${(m(p, "rate") / m(base, "rate")).toFixed(2)}×`.padStart(6) : "".padStart(6)
    } | ${m(p, "nearCpu").toFixed(1).padStart(19)} | ${m(p, "farCpu").toFixed(1).padStart(26)} |`;
  return [
    `${r.storage} relay, ${FILE_MIB} MiB file, median of ${ROUNDS} alternating rounds`,
    "| path           |  MiB/s |  ratio | this process ms/MiB | relay / bare server ms/MiB |",
    "| -------------- | ------ | ------ | ------------------- | -------------------------- |",
    row("relay upload", "bare upload"),
    row("bare upload", null),
    row("relay download", "bare download"),
    row("bare download", null),
    `fetchFile after its last chunk (fsync, SHA-256 check, rename, blobDone): median ${median(r.fetchTailMs).toFixed(0)} ms, included above`,
    `peak RSS: relay ${r.relayPeakRss.toFixed(0)} MiB, bare server ${r.barePeakRss.toFixed(0)} MiB`,
  ];
}

console.log(
  `bench:files: ${FILE_MIB} MiB (${CHUNKS} chunks of ${FILE_CHUNK_BYTES / 1024} KiB) through a local relay vs a bare ws server; ` +
    `in flight: ${UPLOAD_IN_FLIGHT} puts, ${DOWNLOAD_IN_FLIGHT} gets. "this process" is the client (both Alice and Bob) ` +
    "or the baseline's load generator, all its threads. BENCH_FILE_MIB=1024 checks the issue's peak RSS under 200 MiB for a 1 GiB file.",
);
if (process.env.BENCH_FILE_WORK === "caller") setFileWork(inlineWork());
console.log(
  `the client seals, opens and hashes chunks in ${(await fileWork()).thread === "worker" ? "a worker thread" : "its main thread"}`,
);
try {
  const file = makeFile();
  const results: Result[] = [];
  for (const storage of STORAGES) results.push(await benchStorage(storage, file));
  for (const r of results) {
    console.log("");
    for (const line of table(r)) console.log(line);
  }
  console.log("");
  console.log(
    `peak RSS of this process (client and load generator, whole run): ${ownPeakRssMiB().toFixed(0)} MiB`,
  );
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
