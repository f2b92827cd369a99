// RelayPool.vet (core/relays.ts) against a small HTTP server standing in for a relay's
// transparency statement: a relay that closed an idle connection while this process's event loop
// was blocked (scrypt, a long synchronous transaction) is still reached, and one with nothing
// listening is still unreachable.
import { createServer } from "node:net";
import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { RelayPool } from "../../src/core/relays.js";
import { ClientError } from "../../src/errors.js";
import { cleanupStores, harness } from "./helpers.js";

const workers: Worker[] = [];

afterEach(async () => {
  for (const w of workers.splice(0)) await w.terminate();
  cleanupStores();
});

/**
 * The relay's HTTP side on its own thread, so it keeps running while this thread is blocked. It
 * answers every path with a transparency statement and keeps connections alive (announcing a long
 * keep-alive, as a client cannot know when a server gives up on an idle socket); sent "close", it
 * closes its idle connections and then sets `closed[0]` and wakes this thread.
 */
async function statementServer(closed: Int32Array): Promise<{ port: number; worker: Worker }> {
  const worker = new Worker(
    `
    const { createServer } = require("node:http");
    const { parentPort, workerData } = require("node:worker_threads");
    const body = JSON.stringify({ retention: { seconds: 604800, sweepIntervalSeconds: 60 } });
    const sockets = new Set();
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "keep-alive": "timeout=60" });
      res.end(body);
    });
    server.keepAliveTimeout = 60_000;
    server.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
    parentPort.on("message", async () => {
      const gone = [...sockets].map((s) => new Promise((r) => s.once("close", r)));
      server.closeIdleConnections();
      await Promise.all(gone);
      Atomics.store(workerData, 0, 1);
      Atomics.notify(workerData, 0);
    });
    server.listen(0, "127.0.0.1", () => parentPort.postMessage(server.address().port));
    `,
    { eval: true, workerData: closed },
  );
  workers.push(worker);
  const port = await new Promise<number>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  return { port, worker };
}

function pool() {
  const h = harness();
  const events = { deliver() {}, up() {}, down() {}, lockedToken: () => undefined };
  return { h, pool: new RelayPool(h.ctx, h.store.tables.relays, events) };
}

describe("RelayPool.vet", () => {
  it("reaches a relay that closed its idle connection while the event loop was blocked", async () => {
    const closed = new Int32Array(new SharedArrayBuffer(4));
    const { port, worker } = await statementServer(closed);
    const { h, pool: p } = pool();
    await p.vet(`ws://127.0.0.1:${port}/a`);
    // A turn of the event loop, as a program has between two vets: the connection goes back to
    // fetch's pool of idle ones.
    await new Promise((r) => setImmediate(r));
    // Block this thread (as scrypt does) until the relay has closed the idle connection: this
    // process reads that close only after the block, when the next fetch may already reuse it.
    worker.postMessage("close");
    Atomics.wait(closed, 0, 0, 10_000);
    expect(Atomics.load(closed, 0)).toBe(1);
    await p.vet(`ws://127.0.0.1:${port}/b`);
    expect(h.store.tables.relays.get(`ws://127.0.0.1:${port}/b`)?.retentionSeconds).toBe(604800);
  });

  it("still reports a relay with nothing listening as unreachable", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const { pool: p } = pool();
    const err = await p.vet(`ws://127.0.0.1:${port}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe("UNREACHABLE");
  });
});
