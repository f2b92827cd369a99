// Issue 18: one anonymous client must not be able to crash the relay, fill it, or lock people out.
// Each attack runs against the real relay process while an honest owner and sender (127.0.0.1)
// deposit and receive throughout; the attackers come from other loopback addresses (127.0.0.2 and
// up), each a source of its own. Every test checks that the relay stays up, `/livez` answers, every
// honest message arrives, the relay's memory (VmRSS) stays within the bound its flags set, and that
// afterwards its connections, sockets and buffers are back where they were. Limits are lowered by
// flags so that each attack is small; nothing here measures time.
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Frame, MailboxAction, MailboxKey, mailboxAddress, mailboxProofMessage } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { Honest, MiB, openFiles, Refused, RssWatch, rawSocket, rss, Wire } from "./attack.js";
import { http, metric, metrics, type RelayProcess, sleep, startRelay, until } from "./helpers.js";

const relays: RelayProcess[] = [];
const wires: Wire[] = [];
afterEach(async () => {
  for (const w of wires.splice(0)) w.close();
  await Promise.all(relays.splice(0).map((r) => r.stop("SIGKILL")));
});

async function relay(args: string[], limits: { openFiles?: number } = {}): Promise<RelayProcess> {
  const r = await startRelay(["--storage", "memory", "--trust-proxy", "none", ...args], {}, limits);
  relays.push(r);
  return r;
}

/** /livez, asked again and again until `stop` resolves: every answer must be 200. */
function pollLivez(port: number, stop: Promise<unknown>): Promise<{ asked: number; failed: string[] }> {
  let done = false;
  void stop.finally(() => {
    done = true;
  });
  return (async () => {
    const failed: string[] = [];
    let asked = 0;
    while (!done) {
      asked++;
      const r = await http(port, "/livez").catch((e: Error) => ({ status: 0, body: e.message }));
      if (r.status !== 200) failed.push(`${r.status} ${r.body}`);
      await sleep(50);
    }
    return { asked, failed };
  })();
}

/** The relay's figures that must come back to where they were once an attack is over. */
async function baseline(r: RelayProcess) {
  const m = await metrics(r.port);
  return {
    connections: m.get("parley_relay_connections"),
    sockets: m.get("parley_relay_sockets"),
    receiveBuffer: m.get("parley_relay_receive_buffer_bytes"),
    sendBuffer: m.get("parley_relay_send_buffer_bytes"),
    sources: m.get("parley_relay_sources"),
  };
}

/** Waits until no connection, no source and no stored message is left from an attack. */
function drained(r: RelayProcess): Promise<void> {
  return until("the connections, sources and stored messages to be back to the baseline", async () => {
    const now = await baseline(r);
    const stored = await metric(r.port, "parley_relay_stored_messages");
    return now.connections === 0 && now.sources === 0 && stored === 0;
  });
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

describe("hostile load against the real relay (issue 18)", () => {
  it("1. unfinished messages of one-byte fragments: each connection and all of them together are bounded", async () => {
    const BUDGET = 4 * MiB;
    const r = await relay([
      "--max-receive-buffer",
      String(BUDGET),
      "--max-connections",
      "1000",
      "--max-connections-per-source",
      "100",
      "--idle-timeout",
      "3s",
    ]);
    const pid = r.proc.pid!;
    const honest = await Honest.start(r.port);
    await sleep(300);
    const before = await baseline(r);
    const rssBefore = rss(pid);
    const watch = new RssWatch(pid);
    /** An unfinished binary message of `n` one-byte fragments: FIN never set, zero masks. */
    const fragments = (n: number) => {
      const b = Buffer.alloc(n * 7);
      for (let i = 0; i < n; i++) {
        b[i * 7] = i === 0 ? 0x02 : 0x00;
        b[i * 7 + 1] = 0x81;
        b[i * 7 + 6] = 0x41;
      }
      return b;
    };
    // 60 connections send 16,384 fragments each (ws's own fragment limit: 2.2 MiB of heap each
    // unbounded), past what one connection may hold; 60 send 400 each, under it, but together past
    // the budget. From 12 sources, after hello; none ever finishes its message.
    const big = fragments(16_384);
    const small = fragments(400);
    const attack = (async () => {
      const attackers: Wire[] = [];
      for (let i = 0; i < 120; i++) {
        const w = await Wire.open(r.port, `127.0.0.${2 + (i % 12)}`);
        wires.push(w);
        attackers.push(w);
        w.socket.write(i % 2 === 0 ? big : small);
      }
      await sleep(200);
      const held = await metric(r.port, "parley_relay_receive_buffer_bytes");
      const codes = await Promise.all(attackers.map((w) => w.closed));
      return { bytes: 60 * (big.length + small.length), held, codes };
    })();
    const livez = pollLivez(r.port, attack);
    const { bytes, held, codes } = await attack;
    const during = watch.stop();
    const honestResult = await honest.finish();
    await drained(r);
    const after = await baseline(r);
    const rssAfter = rss(pid);
    const { asked, failed } = await livez;
    const count = (code: number) => codes.filter((c) => c === code).length;
    console.log(
      `fragments: 120 connections from 12 sources, ${mib(bytes)} of one-byte fragments; relay held ${mib(held)} of unfinished input (budget ${mib(BUDGET)}); ` +
        `closed ${count(1009)} with 1009 (too big), ${count(1008)} with 1008 (budget), ${count(1000)} idle; ` +
        `rss ${mib(rssBefore)} -> peak ${mib(watch.peak)} (at the end ${mib(during)}) -> after ${mib(rssAfter)}; ` +
        `honest ${honestResult.delivered}/${honestResult.sent} delivered; /livez ${asked - failed.length}/${asked}`,
    );
    expect(r.proc.exitCode).toBeNull();
    expect(failed).toEqual([]);
    expect(honestResult.problems).toEqual([]);
    expect(honestResult.sent).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(BUDGET);
    // Every attacker was closed by the relay: past its own limit (1009), for the budget (1008), or
    // as idle (1000: an unfinished message is no frame).
    expect(count(1009)).toBe(60);
    expect(count(1008)).toBeGreaterThan(0);
    expect(count(1009) + count(1008) + count(1000)).toBe(120);
    // The bound: the budget, plus what is not buffered input (connection objects, garbage not yet
    // collected). Unbounded, the 60 large messages alone hold 130 MiB.
    expect(watch.peak - rssBefore).toBeLessThan(BUDGET + 32 * MiB);
    // Afterwards: no connection, socket (but this request's), source or buffer left.
    expect(after).toEqual({ ...before, connections: 0, sockets: 1, sources: 0 });
    expect(rssAfter - rssBefore).toBeLessThan(32 * MiB);
  });

  it("2. every socket has a deadline: silent, slow headers, bad requests held half-open, no hello, idle, never reading", async () => {
    const r = await relay(
      [
        "--handshake-timeout",
        "2s",
        "--idle-timeout",
        "2s",
        "--heartbeat",
        "1s",
        "--max-connections",
        "60",
        "--http-reserve",
        "24",
        "--max-connections-per-source",
        "20",
      ],
      { openFiles: 512 },
    );
    const pid = r.proc.pid!;
    const honest = await Honest.start(r.port);
    await sleep(300);
    const before = await baseline(r);
    const filesBefore = openFiles(pid);
    const rssBefore = rss(pid);
    const watch = new RssWatch(pid);
    // From two sources, six of each kind (36 each: a source's share of sockets is 20 + 16).
    const held: { destroy(): void }[] = [];
    const kinds = { silent: 0, slowHeaders: 0, badRequest: 0, noHello: 0, idle: 0, notReading: 0 };
    for (const from of ["127.0.0.2", "127.0.0.3"]) {
      for (let i = 0; i < 6; i++) {
        const silent = await rawSocket(r.port, from);
        held.push(silent.socket);
        kinds.silent++;
        const slow = await rawSocket(r.port, from);
        slow.socket.write("GET /livez HTTP/1.1\r\nHost: relay\r\n");
        held.push(slow.socket);
        kinds.slowHeaders++;
        // A request that does not parse, from a peer that never reads and never closes its side.
        const bad = await rawSocket(r.port, from);
        bad.socket.pause();
        bad.socket.write("NOT HTTP AT ALL\r\n\r\n");
        held.push(bad.socket);
        kinds.badRequest++;
        const mute = await Wire.open(r.port, from, { hello: false });
        wires.push(mute);
        kinds.noHello++;
        const idle = await Wire.open(r.port, from);
        wires.push(idle);
        kinds.idle++;
        // Asks for answers (thousands of unsubscribes: ok, then RATE_LIMITED) and never reads them.
        const deaf = await Wire.open(r.port, from);
        wires.push(deaf);
        deaf.socket.pause();
        for (let n = 0; n < 3000; n++)
          deaf.send({ type: "unsubscribe", requestId: n + 10, address: new Uint8Array(32) });
        kinds.notReading++;
      }
    }
    const attackSockets = Object.values(kinds).reduce((a, b) => a + b, 0);
    const peakFiles = openFiles(pid);
    // The attacker holds every socket open; the relay must let go of each by its deadline.
    const settled = until(
      "the relay to close every attacking socket",
      async () =>
        (await metric(r.port, "parley_relay_sockets")) <= before.sockets! && openFiles(pid) <= filesBefore,
      30_000,
    );
    const livez = pollLivez(r.port, settled);
    await settled;
    const { asked, failed } = await livez;
    watch.stop();
    const honestResult = await honest.finish();
    await drained(r);
    const after = await baseline(r);
    const closed = await metrics(r.port);
    console.log(
      `deadlines: ${attackSockets} attacking sockets from 2 sources (${JSON.stringify(kinds)}); relay files ${filesBefore} -> ${peakFiles} -> ${openFiles(pid)}; ` +
        `rss ${mib(rssBefore)} -> peak ${mib(watch.peak)}; honest ${honestResult.delivered}/${honestResult.sent} delivered; /livez ${asked - failed.length}/${asked}; ` +
        `WebSocket connections closed by the relay: ${closed.get("parley_relay_closed_connections_total")}`,
    );
    for (const h of held) h.destroy();
    expect(r.proc.exitCode).toBeNull();
    expect(failed).toEqual([]);
    expect(honestResult.problems).toEqual([]);
    expect(honestResult.sent).toBeGreaterThan(0);
    // The attack reached the relay (on a loaded machine the first sockets may already have met
    // their deadline by the time the last is open, so this only asks for some of them).
    expect(peakFiles).toBeGreaterThan(filesBefore + 5);
    expect(watch.peak - rssBefore).toBeLessThan(48 * MiB);
    expect(after).toEqual({ ...before, connections: 0, sockets: 1, sources: 0 });
  });

  it("2b. with TLS: a handshake that never finishes, or never starts, is dropped at --handshake-timeout", async () => {
    const { generate } = await import("selfsigned");
    const dir = mkdtempSync(join(tmpdir(), "parley-hardening-tls-"));
    try {
      const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
      const pems = await generate([{ name: "commonName", value: "localhost" }], { keySize: 2048 });
      writeFileSync(cert, pems.cert);
      writeFileSync(key, pems.private);
      const r = await relay(["--tls-cert", cert, "--tls-key", key, "--handshake-timeout", "1s"]);
      const before = openFiles(r.proc.pid!);
      const sockets = [];
      for (let i = 0; i < 10; i++) {
        const s = await rawSocket(r.port, "127.0.0.2");
        // Half of them start a ClientHello (a record header, then nothing); half send nothing.
        if (i % 2 === 0) s.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
        sockets.push(s);
      }
      await until("the relay to hold them", () => openFiles(r.proc.pid!) >= before + 10);
      const during = openFiles(r.proc.pid!);
      await Promise.all(sockets.map((s) => s.closedByRelay));
      await until("the relay's files to be back", () => openFiles(r.proc.pid!) <= before);
      console.log(
        `tls: 10 unfinished TLS handshakes; relay files ${before} -> ${during} -> ${openFiles(r.proc.pid!)}`,
      );
      expect(during).toBeGreaterThanOrEqual(before + 10);
      expect(r.proc.exitCode).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("3. connections per source, a trusted proxy's forwarded address, and HTTP answered when every slot is taken", async () => {
    const r = await relay([
      "--max-connections",
      "40",
      "--max-connections-per-source",
      "8",
      "--http-reserve",
      "8",
      "--trust-proxy",
      "127.0.0.9",
    ]);
    const pid = r.proc.pid!;
    const honest = await Honest.start(r.port);
    await sleep(300);
    const before = await baseline(r);
    const rssBefore = rss(pid);
    /** Opens `n` connections (with hello); counts those accepted and the statuses of the others. */
    const open = async (n: number, from: string, headers?: Record<string, string>) => {
      const refused: number[] = [];
      let accepted = 0;
      for (let i = 0; i < n; i++) {
        try {
          wires.push(await Wire.open(r.port, from, { headers }));
          accepted++;
        } catch (e) {
          if (!(e instanceof Refused)) throw e;
          refused.push(e.status);
        }
      }
      return { accepted, refused };
    };
    // One source wants 30 connections: it gets 8.
    const one = await open(30, "127.0.0.2");
    // Someone else still gets in.
    const newcomer = await open(1, "127.0.0.1");
    wires.pop()?.close();
    // Through the trusted proxy: counted by the forwarded address (the right-most one not a proxy).
    const proxied = await open(10, "127.0.0.9", { "x-forwarded-for": "198.51.100.7" });
    const chained = await open(1, "127.0.0.9", { "x-forwarded-for": "198.51.100.7, 198.51.100.8" });
    // From a peer that is not trusted, a forwarded address is ignored: it is its own source.
    const spoofed = await open(10, "127.0.0.10", { "x-forwarded-for": "198.51.100.99" });
    // The rest of the slots: 2 honest + 8 + 8 + 1 + 8 = 27 taken, 13 left.
    const rest = await open(16, "127.0.0.3").then(async (a) => ({ a, b: await open(16, "127.0.0.4") }));
    const full = await metrics(r.port);
    const locked = await open(1, "127.0.0.1");
    const health = await Promise.all(
      ["/livez", "/readyz", "/metrics", "/transparency"].map((p) => http(r.port, p)),
    );
    const honestResult = await honest.finish();
    for (const w of wires.splice(0)) w.close();
    await drained(r);
    const after = await baseline(r);
    console.log(
      `sources: one source asked 30, got ${one.accepted} (refused ${one.refused.length} with ${[...new Set(one.refused)]}); proxied ${proxied.accepted}/10; ` +
        `spoofed ${spoofed.accepted}/10; all slots: ${full.get("parley_relay_connections")} connections; then HTTP ${health.map((h) => h.status).join(",")}; ` +
        `honest ${honestResult.delivered}/${honestResult.sent} delivered; rss ${mib(rssBefore)} -> ${mib(rss(pid))}`,
    );
    expect(r.proc.exitCode).toBeNull();
    expect(honestResult.problems).toEqual([]);
    expect(one).toEqual({ accepted: 8, refused: new Array(22).fill(429) });
    expect(newcomer.accepted).toBe(1);
    expect(proxied).toEqual({ accepted: 8, refused: [429, 429] });
    expect(chained.accepted).toBe(1);
    expect(spoofed).toEqual({ accepted: 8, refused: [429, 429] });
    expect(rest.a.accepted + rest.b.accepted).toBe(13);
    expect([...new Set([...rest.a.refused, ...rest.b.refused])].sort()).toEqual([429, 503]);
    expect(full.get("parley_relay_connections")).toBe(40);
    expect(locked).toEqual({ accepted: 0, refused: [503] });
    expect(health.map((h) => h.status)).toEqual([200, 200, 200, 200]);
    expect(after).toEqual({ ...before, connections: 0, sockets: 1, sources: 0 });
  });

  it("5. ownership proofs: paced per connection and per source, and the honest owner's proofs still go through", async () => {
    const r = await relay(["--proof-rate", "5", "--proof-rate-per-source", "10"]);
    const pid = r.proc.pid!;
    const honest = await Honest.start(r.port);
    await sleep(300);
    const before = await baseline(r);
    const rssBefore = rss(pid);
    const proofsBefore = await metrics(r.port);
    // 4 connections from one source, each pipelining 100 mailbox creations with valid proofs
    // (made with OpenSSL: cheap for an attacker) and 100 with bad ones (which OpenSSL refuses, and
    // noble checks again within the relay's second-opinion budget).
    const attackers = await Promise.all(Array.from({ length: 4 }, () => Wire.open(r.port, "127.0.0.2")));
    wires.push(...attackers);
    const started = performance.now();
    const answers = await Promise.all(
      attackers.flatMap((w) =>
        Array.from({ length: 200 }, (_, i) => {
          const { publicKey, privateKey } = generateKeyPairSync("ed25519");
          const ownerKey = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(12));
          const message = mailboxProofMessage(MailboxAction.create, w.challenge, mailboxAddress(ownerKey));
          // A bad proof that only the curve arithmetic can refuse: signed over another challenge.
          const signed =
            i % 2 === 0 ? message : mailboxProofMessage(MailboxAction.create, new Uint8Array(32), ownerKey);
          const signature = new Uint8Array(sign(null, signed, privateKey));
          return w.request({ type: "createMailbox", requestId: 0, ownerKey, signature }, 30_000);
        }),
      ),
    );
    // Meanwhile an honest owner, on a connection of its own, makes and subscribes to a mailbox.
    const owner = await Wire.open(r.port);
    wires.push(owner);
    const key = MailboxKey.generate();
    const created = await owner.request({
      type: "createMailbox",
      requestId: 0,
      ownerKey: key.publicKey,
      signature: key.prove(MailboxAction.create, owner.challenge),
    });
    const elapsed = (performance.now() - started) / 1000;
    const honestResult = await honest.finish();
    const code = (f: (typeof answers)[number]) => (f.type === "error" ? f.code : f.type);
    const tally = new Map<string, number>();
    for (const a of answers) tally.set(code(a), (tally.get(code(a)) ?? 0) + 1);
    const m = await metrics(r.port);
    const checked = (tally.get("ok") ?? 0) + (tally.get("AUTH") ?? 0);
    const secondOpinions =
      m.get("parley_relay_proof_second_opinions_total")! -
      proofsBefore.get("parley_relay_proof_second_opinions_total")!;
    for (const w of wires.splice(0)) w.close();
    // A source is remembered until the proofs it booked ahead are due, so that reconnecting does not
    // reset its pace.
    await until("the connections and sources to be back to the baseline", async () => {
      const now = await baseline(r);
      return now.connections === 0 && now.sources === 0;
    });
    const after = await baseline(r);
    console.log(
      `proofs: 800 proofs from 4 connections of one source in ${elapsed.toFixed(1)} s: ${JSON.stringify(Object.fromEntries(tally))}; ` +
        `${checked} checked, ${secondOpinions} second opinions; honest owner: ${created.type}; ` +
        `honest ${honestResult.delivered}/${honestResult.sent} delivered; rss ${mib(rssBefore)} -> ${mib(rss(pid))}`,
    );
    expect(r.proc.exitCode).toBeNull();
    expect(honestResult.problems).toEqual([]);
    expect(created.type).toBe("ok");
    // Each answer is one of these three: created, refused proof, or not checked (RATE_LIMITED).
    expect([...tally.keys()].sort()).toEqual(["AUTH", "RATE_LIMITED", "ok"]);
    // The source's pace bounds what was checked: a burst of 20, then 10 a second, over the whole
    // time the attack took (however long that was); unpaced, all 800 would be.
    expect(checked).toBeLessThanOrEqual(20 + Math.ceil(10 * elapsed));
    expect(secondOpinions).toBeGreaterThan(0);
    expect(secondOpinions).toBeLessThanOrEqual(20 + Math.ceil(20 * elapsed));
    expect(after).toEqual({ ...before, connections: 0, sockets: 1, sources: 0 });
  });

  it("7. a stranger who knows an address fills a mailbox without a deposit token, and cannot touch one with", async () => {
    const r = await relay(["--mailbox-max-messages", "40", "--rate-limit", "100000"]);
    const pid = r.proc.pid!;
    const honest = await Honest.start(r.port, { token: true });
    await sleep(300);
    const before = await baseline(r);
    const rssBefore = rss(pid);
    // The contrast: a mailbox whose owner set no token (and is offline) is full after 40 junk
    // deposits, and its owner's contacts get QUOTA until the owner drains it.
    const open = MailboxKey.generate();
    const openOwner = await Wire.open(r.port);
    wires.push(openOwner);
    const created = await openOwner.request({
      type: "createMailbox",
      requestId: 0,
      ownerKey: open.publicKey,
      signature: open.prove(MailboxAction.create, openOwner.challenge),
    });
    expect(created.type).toBe("ok");
    // Four connections from one source, each pipelining 200 deposits at each mailbox: half plain,
    // half with a made-up token.
    const attackers = await Promise.all(Array.from({ length: 4 }, () => Wire.open(r.port, "127.0.0.2")));
    wires.push(...attackers);
    const flood = (address: Uint8Array) =>
      Promise.all(
        attackers.flatMap((w) =>
          Array.from({ length: 200 }, (_, i) => {
            const clientMessageId = randomBytes(16);
            const ciphertext = randomBytes(1000);
            return w.request(
              i % 2 === 0
                ? { type: "deposit", requestId: 0, address, clientMessageId, ciphertext }
                : {
                    type: "tokenDeposit",
                    requestId: 0,
                    address,
                    token: randomBytes(32),
                    clientMessageId,
                    ciphertext,
                  },
            );
          }),
        ),
      );
    const tally = (answers: Frame[]) => {
      const t: Record<string, number> = {};
      for (const a of answers) {
        const k = a.type === "error" ? a.code : a.type;
        t[k] = (t[k] ?? 0) + 1;
      }
      return t;
    };
    const attack = (async () => [tally(await flood(open.address)), tally(await flood(honest.address))])();
    const livez = pollLivez(r.port, attack);
    const [atOpen, atLocked] = await attack;
    const storedDuring = await metric(r.port, "parley_relay_stored_messages");
    const honestResult = await honest.finish();
    const { asked, failed } = await livez;
    // The stranger's junk in the open mailbox goes when its owner deletes it.
    const deleted = await openOwner.request({
      type: "deleteMailbox",
      requestId: 0,
      address: open.address,
      signature: open.prove(MailboxAction.delete, openOwner.challenge),
    });
    for (const w of wires.splice(0)) w.close();
    await drained(r);
    const after = await baseline(r);
    console.log(
      `deposit tokens: 800 deposits at a mailbox without a token: ${JSON.stringify(atOpen)}; ` +
        `800 at the honest mailbox with one: ${JSON.stringify(atLocked)}; stored during ${storedDuring}; ` +
        `honest ${honestResult.delivered}/${honestResult.sent} delivered; /livez ${asked - failed.length}/${asked}; ` +
        `rss ${mib(rssBefore)} -> ${mib(rss(pid))}`,
    );
    expect(r.proc.exitCode).toBeNull();
    expect(failed).toEqual([]);
    expect(atOpen).toEqual({ ok: 40, QUOTA: 760 });
    expect(atLocked).toEqual({ AUTH: 800 });
    // What was stored during the attack: the open mailbox's 40, and of the honest mailbox nothing
    // but honest messages not yet acknowledged (each arrived, and the honest sender had no error).
    expect(storedDuring).toBeGreaterThanOrEqual(40);
    expect(honestResult.problems).toEqual([]);
    expect(honestResult.sent).toBeGreaterThan(0);
    expect(deleted.type).toBe("ok");
    expect(after).toEqual({ ...before, connections: 0, sockets: 1, sources: 0 });
  });

  it("6. /metrics and /transparency asked without pause, with a thousand mailboxes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "parley-hardening-"));
    try {
      const r = await relay([
        "--storage",
        "sqlite",
        "--data-dir",
        dir,
        "--proof-rate",
        "100000",
        "--proof-rate-per-source",
        "100000",
        "--rate-limit",
        "100000",
      ]);
      const pid = r.proc.pid!;
      // 1,000 mailboxes, made quickly (OpenSSL signs the proofs).
      const maker = await Wire.open(r.port, "127.0.0.5");
      wires.push(maker);
      const made = await Promise.all(
        Array.from({ length: 1000 }, () => {
          const { publicKey, privateKey } = generateKeyPairSync("ed25519");
          const ownerKey = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(12));
          const message = mailboxProofMessage(
            MailboxAction.create,
            maker.challenge,
            mailboxAddress(ownerKey),
          );
          const signature = new Uint8Array(sign(null, message, privateKey));
          return maker.request({ type: "createMailbox", requestId: 0, ownerKey, signature }, 60_000);
        }),
      );
      expect(made.every((f) => f.type === "ok")).toBe(true);
      maker.close();
      const honest = await Honest.start(r.port);
      await sleep(300);
      const rssBefore = rss(pid);
      const watch = new RssWatch(pid);
      // Four sources, 150 requests each, one after another, all at the same time.
      let served = 0;
      const attack = Promise.all(
        [2, 3, 4, 6].map(async () => {
          for (let i = 0; i < 150; i++) {
            const res = await http(r.port, i % 2 === 0 ? "/metrics" : "/transparency");
            if (res.status === 200) served++;
          }
        }),
      );
      const livez = pollLivez(r.port, attack);
      await attack;
      watch.stop();
      const { asked, failed } = await livez;
      const statement = JSON.parse((await http(r.port, "/transparency")).body);
      const honestResult = await honest.finish();
      console.log(
        `stats: 1,000 mailboxes, ${served} requests for /metrics and /transparency; rss ${mib(rssBefore)} -> peak ${mib(watch.peak)}; ` +
          `honest ${honestResult.delivered}/${honestResult.sent} delivered; /livez ${asked - failed.length}/${asked}`,
      );
      expect(r.proc.exitCode).toBeNull();
      expect(served).toBe(600);
      expect(failed).toEqual([]);
      expect(honestResult.problems).toEqual([]);
      expect(statement.counters.mailboxes).toBe(1001);
      expect(watch.peak - rssBefore).toBeLessThan(32 * MiB);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
