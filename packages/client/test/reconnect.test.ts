// A live client and relays that go away: the real relay process killed and started again on its
// port, and the personal relay (ensureLocalRelay) killed by its pid and restarted by the client.
// Each waits for what must happen, however long it takes; how fast it happens is measured by
// bench/reconnect-bench.ts.
import { afterEach, describe, expect, it } from "vitest";
import type { ClientError } from "../src/errors.js";
import { ensureLocalRelay, localRelayPid } from "../src/local-relay.js";
import { probeRelay, RelayConnection } from "../src/relay-connection.js";
import {
  cleanupLive,
  eventually,
  freePort,
  kill,
  onCleanup,
  pair,
  relay,
  relayEvent,
  tmp,
} from "./live-helpers.js";

afterEach(cleanupLive);

describe("a live client whose relay goes away", () => {
  it("says it is offline and why, reconnects once the relay is back on its port, and delivers", {
    timeout: 120_000,
  }, async () => {
    const port = await freePort();
    const data = tmp();
    const args = ["--storage", "sqlite", "--data-dir", data, "--port", String(port)];
    const url = `ws://127.0.0.1:${port}`;
    const r = await relay(args);
    const [alice, bob] = await pair(url);
    await alice.start();
    await bob.start();
    expect(bob.status().relays).toEqual([
      {
        url,
        state: "connected",
        connected: true,
        nextRetryAt: null,
        lastError: null,
        retentionSeconds: 604_800,
      },
    ]);

    const aliceOffline = relayEvent(alice, (s) => s.state === "offline");
    const bobOffline = relayEvent(bob, (s) => s.state === "offline" && s.lastError !== null);
    await r.stop("SIGKILL");
    await aliceOffline;
    const down = await bobOffline;
    expect(down.url).toBe(url);
    expect(down.lastError).toMatch(/connection/);
    // While it stays down: offline, with the time of the next attempt and the reason in words.
    await relayEvent(bob, (s) => s.lastError === "connection refused");
    const [state] = bob.status().relays;
    expect(state).toMatchObject({ url, connected: false, lastError: "connection refused" });
    expect(state!.state === "offline" || state!.state === "connecting").toBe(true);
    if (state!.state === "offline") expect(state!.nextRetryAt).toBeGreaterThan(0);

    // A message written meanwhile waits in the outbox (being offline is not a delivery failure).
    const failure = await bob.send("alice", ["written while the relay was down"]).catch((e: unknown) => e);
    expect((failure as ClientError).code).toBe("UNREACHABLE");
    expect(bob.history("alice").at(-1)).toMatchObject({ status: "queued", failure: null });

    const aliceBack = relayEvent(alice, (s) => s.state === "connected");
    const bobBack = relayEvent(bob, (s) => s.state === "connected");
    const arrived = eventually(
      alice,
      (e) => e.type === "message" && e.text === "written while the relay was down",
    );
    await relay(args);
    await Promise.all([aliceBack, bobBack]);
    // Neither syncs: the reconnected clients flush and receive by themselves.
    expect(await arrived).toMatchObject({ contact: "Bob", direction: "in" });
    const later = eventually(alice, (e) => e.type === "message" && e.text === "and after it");
    await bob.send("alice", ["and after it"]);
    await later;
    expect(bob.status().relays[0]).toMatchObject({ state: "connected", lastError: null, nextRetryAt: null });
    expect(alice.history("Bob").map((m) => m.text)).toEqual([
      "written while the relay was down",
      "and after it",
    ]);
  });

  it("restarts the personal relay when its process dies, and both clients go on", {
    timeout: 180_000,
  }, async () => {
    const env = {
      ...process.env,
      XDG_DATA_HOME: tmp(),
      PARLEY_LOCAL_RELAY_PORT: String(await freePort()),
    };
    onCleanup(async () => {
      const pid = localRelayPid(env);
      if (pid !== null) await kill(pid);
    });
    const { url, started } = await ensureLocalRelay(env);
    expect(started).toBe(true);
    const [alice, bob] = await pair(url, { localRelay: true });
    await alice.start({ env });
    await bob.start({ env });
    const first = localRelayPid(env);
    expect(first).not.toBeNull();

    const warnings: string[] = [];
    alice.on("warning", (w) => warnings.push(w));
    bob.on("warning", (w) => warnings.push(w));
    const aliceBack = relayEvent(alice, (s) => s.state === "connected", 60_000);
    const bobBack = relayEvent(bob, (s) => s.state === "connected", 60_000);
    await kill(first!);
    await Promise.all([aliceBack, bobBack]);
    const second = localRelayPid(env);
    expect(second).not.toBeNull();
    expect(second).not.toBe(first);
    // One of the two restarted it; the other found it starting, or already back.
    expect(warnings).toContain("your personal relay had stopped; it was restarted");

    const arrived = eventually(alice, (e) => e.type === "message" && e.text === "through the new relay");
    const [sent] = await bob.send("alice", ["through the new relay"]);
    expect(sent).toMatchObject({ status: "stored", failure: null });
    await arrived;
  });
});

describe("a relay connection", () => {
  it("drops a connection whose relay stops answering (a hung process), and says why", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const conn = await RelayConnection.open(url, { heartbeatMs: 200 });
    const closed = new Promise<string>((resolve) => conn.once("close", resolve));
    r.proc.kill("SIGSTOP");
    try {
      expect(await closed).toBe("no answer to a ping within 200 ms");
      expect(conn.isOpen).toBe(false);
    } finally {
      r.proc.kill("SIGCONT");
    }
  });

  it("probes a relay's port: null when it takes a connection, else why not in words", async () => {
    const r = await relay();
    expect(await probeRelay(`ws://127.0.0.1:${r.port}`)).toBeNull();
    await r.stop();
    expect(await probeRelay(`ws://127.0.0.1:${r.port}`)).toBe("connection refused");
    expect(await probeRelay("not a url")).toBe("not a relay URL");
  });
});
