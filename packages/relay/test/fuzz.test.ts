// Hostile input to a running relay (the real process): random bytes, mutated frames of every type,
// text frames, frames before hello, oversized frames and garbage below the WebSocket layer, over many
// short-lived connections. Every reply must be a typed frame, violations are counted and end the
// connection (1008), the process lives on, its memory comes back, and a normal flow still works.
// Then the protective limits: rate limit, connection limit, heartbeat, and a reader that stops reading.
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DecodeError,
  decodeFrame,
  encodeFrame,
  type Frame,
  isClientFrame,
  MailboxAction,
  MailboxKey,
  RelayErrorCode,
  type RelayErrorName,
  SEALED_CHUNK_BYTES,
  toHex,
} from "@parley/protocol";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { http, metric, metrics, type RelayProcess, sleep, startRelay, TestClient, until } from "./helpers.js";

/** --max-message-size of the fuzzed relay. */
const MAX = 4096;
/** The largest tokenDeposit: the ciphertext cap plus its fixed fields. */
const MAX_DEPOSIT_FRAME = MAX + 6 + 32 + 32 + 16;
/**
 * The relay's WebSocket maxPayload: the largest frame, a tokenDeposit or a putChunk of a full sealed
 * chunk (65 626 bytes: chunks are not bounded by --max-message-size).
 */
const MAX_PAYLOAD = Math.max(MAX_DEPOSIT_FRAME, 6 + 32 + 32 + 4 + SEALED_CHUNK_BYTES);
/** Bad frames the relay takes before it closes the connection with 1008. */
const MAX_VIOLATIONS = 10;
/** Error codes of violations (the other codes answer well-formed requests). */
const VIOLATIONS = new Set<RelayErrorName>([
  "BAD_FRAME",
  "UNSUPPORTED_VERSION",
  "TOO_LARGE",
  "NO_HELLO",
  "RATE_LIMITED",
]);
const MiB = 1024 * 1024;

function within<T>(what: string, p: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Waits until the relay has exactly `n` open WebSocket connections. */
const connectionsSettle = (port: number, n = 0) =>
  until(`${n} open connections`, async () => (await metric(port, "parley_relay_connections")) === n);

const requestIdOf = (bytes: Uint8Array) =>
  bytes.length >= 6 ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).readUInt32BE(2) : 0;

/** A raw connection: sends anything, records every frame received and how it closed. */
class Conn {
  readonly frames: Frame[] = [];
  /** Replies that were not binary or did not decode. */
  readonly problems: string[] = [];
  closeInfo: { code: number; reason: string } | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;
  onFrame: (f: Frame) => void = () => {};
  challenge: Uint8Array = new Uint8Array(32);
  private readonly listeners = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      this.received(data, isBinary);
      for (const l of [...this.listeners]) l();
    });
    ws.on("error", () => {});
    this.closed = new Promise((resolve) =>
      ws.once("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        for (const l of [...this.listeners]) l();
      }),
    );
  }

  private received(data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      this.problems.push(`text reply ${JSON.stringify(data.toString().slice(0, 80))}`);
      return;
    }
    let f: Frame;
    try {
      f = decodeFrame(new Uint8Array(data), { maxCiphertext: 16 * MiB });
    } catch (e) {
      this.problems.push(`undecodable reply ${toHex(new Uint8Array(data.subarray(0, 32)))}: ${e}`);
      return;
    }
    this.frames.push(f);
    this.onFrame(f);
  }

  static async open(port: number, options: WebSocket.ClientOptions = {}): Promise<Conn> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, options);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return new Conn(ws);
  }

  send(data: Uint8Array | string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  sendFrame(frame: Frame): void {
    this.send(encodeFrame(frame));
  }

  /** Resolves once `check()` holds, testing it after every frame and at the close. */
  when(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
    if (check()) return Promise.resolve();
    let listener = () => {};
    const met = new Promise<void>((resolve) => {
      listener = () => {
        if (check()) resolve();
      };
      this.listeners.add(listener);
    });
    return within(what, met, timeoutMs).finally(() => this.listeners.delete(listener));
  }

  /** The first frame received (so far or later) that matches. */
  async waitFor(what: string, match: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    await this.when(what, () => this.frames.some(match), timeoutMs);
    return this.frames.find(match)!;
  }

  async hello(requestId = 0xfffffff0): Promise<void> {
    this.sendFrame({ type: "hello", requestId, maxVersion: 1 });
    const welcome = await this.waitFor("welcome", (f) => f.requestId === requestId);
    if (welcome.type !== "welcome") throw new Error(`expected welcome, got ${JSON.stringify(welcome)}`);
    this.challenge = welcome.challenge;
  }

  close(): void {
    this.ws.terminate();
  }
}

// ---- the model: what the relay must answer to a sequence of frames on one connection ----------

type Item =
  | { readonly kind: "binary"; readonly bytes: Uint8Array }
  | { readonly kind: "text"; readonly text: string };

interface Expected {
  /** Error replies to bad frames, in order. */
  readonly violations: { code: RelayErrorName; requestId: number }[];
  /** Well-formed requests the relay processes (one reply each: welcome, ok or an error). */
  readonly requests: number;
  /** 1008 after too many violations, 1009 for a frame above maxPayload, or null: stays open. */
  readonly closeCode: 1008 | 1009 | null;
}

function expectedFor(items: readonly Item[]): Expected {
  let hello = false;
  const violations: Expected["violations"] = [];
  let requests = 0;
  for (const item of items) {
    const bytes = item.kind === "binary" ? item.bytes : new Uint8Array(Buffer.from(item.text, "utf8"));
    if (bytes.length > MAX_PAYLOAD) return { violations, requests, closeCode: 1009 };
    let code: RelayErrorName | null = null;
    if (item.kind === "text") code = "BAD_FRAME";
    else {
      try {
        const f = decodeFrame(bytes, { maxCiphertext: MAX });
        if (!isClientFrame(f)) code = "BAD_FRAME";
        else if (f.type === "hello") hello = true;
        else if (!hello) code = "NO_HELLO";
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        code = e.code;
      }
    }
    if (code === null) {
      requests++;
      continue;
    }
    violations.push({ code, requestId: requestIdOf(bytes) });
    if (violations.length >= MAX_VIOLATIONS) return { violations, requests, closeCode: 1008 };
  }
  return { violations, requests, closeCode: null };
}

// ---- generators ------------------------------------------------------------------------------

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bytesOf = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const filled = (min: number, max: number) =>
  fc.integer({ min, max }).map((n) => new Uint8Array(n).fill(n & 0xff));

function frameArbitrary(knownAddress: Uint8Array): fc.Arbitrary<Frame> {
  const address = fc.oneof(bytesOf(32), fc.constant(knownAddress));
  const ciphertext = fc.oneof(
    { weight: 8, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200 }) },
    { weight: 1, arbitrary: filled(MAX - 2, MAX + 8) },
  );
  const errorNames = Object.keys(RelayErrorCode) as RelayErrorName[];
  return fc.oneof(
    fc.record({
      type: fc.constant("hello" as const),
      requestId: u32,
      maxVersion: fc.integer({ min: 1, max: 255 }),
    }),
    fc.record({
      type: fc.constant("createMailbox" as const),
      requestId: u32,
      ownerKey: bytesOf(32),
      signature: bytesOf(64),
    }),
    fc.record({
      type: fc.constant("deposit" as const),
      requestId: u32,
      address,
      clientMessageId: bytesOf(16),
      ciphertext,
    }),
    fc.record({ type: fc.constant("subscribe" as const), requestId: u32, address, signature: bytesOf(64) }),
    fc.record({ type: fc.constant("unsubscribe" as const), requestId: u32, address }),
    fc.record({ type: fc.constant("ack" as const), requestId: u32, address, messageId: bytesOf(16) }),
    fc.record({
      type: fc.constant("deleteMailbox" as const),
      requestId: u32,
      address,
      signature: bytesOf(64),
    }),
    fc.record({
      type: fc.constant("setDepositToken" as const),
      requestId: u32,
      address,
      tokenHash: bytesOf(32),
      signature: bytesOf(64),
    }),
    fc.record({
      type: fc.constant("tokenDeposit" as const),
      requestId: u32,
      address,
      token: bytesOf(32),
      clientMessageId: bytesOf(16),
      ciphertext,
    }),
    fc.record({
      type: fc.constant("welcome" as const),
      requestId: u32,
      version: fc.integer({ min: 1, max: 255 }),
      challenge: bytesOf(32),
      maxCiphertext: u32,
      retentionSeconds: u32,
    }),
    fc.record({ type: fc.constant("ok" as const), requestId: u32 }),
    fc.record({
      type: fc.constant("deliver" as const),
      requestId: u32,
      address,
      messageId: bytesOf(16),
      receivedAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      ciphertext,
    }),
    fc.record({
      type: fc.constant("error" as const),
      requestId: u32,
      code: fc.constantFrom(...errorNames),
      message: fc.string({ maxLength: 100 }),
    }),
  );
}

type Mutation =
  | { readonly op: "flip"; readonly at: number; readonly bit: number }
  | { readonly op: "set"; readonly at: number; readonly value: number }
  | { readonly op: "truncate"; readonly at: number }
  | { readonly op: "extend"; readonly extra: Uint8Array }
  | { readonly op: "insert"; readonly at: number; readonly extra: Uint8Array }
  | { readonly op: "delete"; readonly at: number; readonly n: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant("set" as const), at: fc.nat(120), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    op: fc.constant("set" as const),
    at: fc.constantFrom(0, 1),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    op: fc.constant("extend" as const),
    extra: fc.oneof(
      { weight: 6, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
      filled(1, MAX + 64),
    ),
  }),
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.nat(),
    extra: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
);

function mutate(b: Uint8Array, m: Mutation): Uint8Array {
  const at = (x: number, len: number) => (len === 0 ? 0 : x % len);
  switch (m.op) {
    case "flip": {
      if (b.length === 0) return b;
      const out = Uint8Array.from(b);
      out[at(m.at, b.length)]! ^= 1 << m.bit;
      return out;
    }
    case "set": {
      if (b.length === 0) return b;
      const out = Uint8Array.from(b);
      out[at(m.at, b.length)] = m.value;
      return out;
    }
    case "truncate":
      return b.subarray(0, at(m.at, b.length));
    case "extend":
      return Buffer.concat([b, m.extra]);
    case "insert": {
      const i = at(m.at, b.length + 1);
      return Buffer.concat([b.subarray(0, i), m.extra, b.subarray(i)]);
    }
    case "delete": {
      const i = at(m.at, b.length);
      return Buffer.concat([b.subarray(0, i), b.subarray(i + m.n)]);
    }
  }
}

function itemArbitrary(knownAddress: Uint8Array): fc.Arbitrary<Item> {
  const frame = frameArbitrary(knownAddress);
  const binary = (a: fc.Arbitrary<Uint8Array>) => a.map((bytes): Item => ({ kind: "binary", bytes }));
  const clientType = fc.integer({ min: 0, max: 10 });
  const serverType = fc.integer({ min: 0x80, max: 0x85 });
  // A valid version and a (nearly) valid type, then junk: reaches the field decoders.
  const headerThenJunk = fc
    .tuple(fc.oneof(clientType, serverType), u32, fc.uint8Array({ maxLength: 140 }))
    .map(([type, id, body]) => {
      const b = Buffer.alloc(6 + body.length);
      b[0] = 1;
      b[1] = type;
      b.writeUInt32BE(id, 2);
      b.set(body, 6);
      return new Uint8Array(b);
    });
  return fc.oneof(
    { weight: 3, arbitrary: binary(fc.uint8Array({ maxLength: 96 })) },
    { weight: 2, arbitrary: binary(headerThenJunk) },
    { weight: 3, arbitrary: binary(frame.map(encodeFrame)) },
    {
      weight: 7,
      arbitrary: binary(
        fc
          .tuple(frame.map(encodeFrame), fc.array(mutation, { minLength: 1, maxLength: 3 }))
          .map(([b, ms]) => ms.reduce(mutate, b)),
      ),
    },
    {
      weight: 1,
      arbitrary: fc.string({ unit: "grapheme", maxLength: 64 }).map((text): Item => ({ kind: "text", text })),
    },
  );
}

/** One connection's worth: maybe a hello first, the items, maybe a frame above maxPayload somewhere. */
function sessionArbitrary(item: fc.Arbitrary<Item>, maxItems: number): fc.Arbitrary<Item[]> {
  return fc
    .record({
      hello: fc.boolean(),
      items: fc.array(item, { minLength: 1, maxLength: maxItems }),
      // Now and then a frame above maxPayload, which ends the connection (1009).
      oversize: fc.oneof(
        { weight: 11, arbitrary: fc.constant(null) },
        {
          weight: 1,
          arbitrary: fc.record({
            at: fc.nat(),
            size: fc.integer({ min: MAX_PAYLOAD + 1, max: 3 * MAX_PAYLOAD }),
          }),
        },
      ),
    })
    .map(({ hello, items, oversize }) => {
      const out = [...items];
      if (oversize) {
        out.splice(oversize.at % (out.length + 1), 0, {
          kind: "binary",
          bytes: new Uint8Array(oversize.size).fill(1),
        });
      }
      if (hello)
        out.unshift({ kind: "binary", bytes: encodeFrame({ type: "hello", requestId: 7, maxVersion: 1 }) });
      return out;
    });
}

describe("hostile input", () => {
  let relay: RelayProcess;
  let conns: { close(): void }[] = [];
  /** A real mailbox, so that fuzzed deposits, acks and subscribes sometimes name one. */
  const known = MailboxKey.generate();
  const stats = { connections: 0, frames: 0, closed1008: 0, closed1009: 0, requests: 0 };

  const open = async (options?: WebSocket.ClientOptions) => {
    const c = await Conn.open(relay.port, options);
    conns.push(c);
    return c;
  };

  /** Sends one session's items and checks every reply against the model. */
  const exercise = async (items: readonly Item[]) => {
    const expected = expectedFor(items);
    const c = await open();
    for (const item of items) c.send(item.kind === "binary" ? item.bytes : item.text);
    stats.connections++;
    stats.frames += expected.violations.length + expected.requests;
    if (expected.closeCode !== null) {
      const { code } = await within("the relay to close the connection", c.closed);
      expect(code).toBe(expected.closeCode);
      if (code === 1008) stats.closed1008++;
      else stats.closed1009++;
    } else {
      const total = expected.violations.length + expected.requests;
      await c.when(`${total} replies`, () => c.frames.length >= total || c.closeInfo !== undefined);
      expect(c.closeInfo).toBeUndefined();
    }
    expect(c.problems).toEqual([]);
    const isViolation = (f: Frame) => f.type === "error" && VIOLATIONS.has(f.code);
    const violations = c.frames.filter(isViolation).map((f) => ({
      code: f.type === "error" ? f.code : null,
      requestId: f.requestId,
    }));
    expect(violations).toEqual(expected.violations);
    const answers = c.frames.filter((f) => !isViolation(f));
    for (const f of answers) {
      expect(["welcome", "ok", "error"]).toContain(f.type);
      if (f.type === "error") expect(f.code).not.toBe("INTERNAL");
    }
    // A request still being processed when the relay closes the connection gets no answer.
    if (expected.closeCode === null) expect(answers.length).toBe(expected.requests);
    else expect(answers.length).toBeLessThanOrEqual(expected.requests);
    stats.requests += answers.length;
    c.close();
  };

  beforeAll(async () => {
    relay = await startRelay([
      "--storage",
      "memory",
      "--max-message-size",
      String(MAX),
      "--unsafe-small-messages",
      "--rate-limit",
      "1000000",
      "--mailbox-max-messages",
      "200",
    ]);
    const owner = await TestClient.connect(relay.port);
    expect((await owner.createMailbox(known)).type).toBe("ok");
    owner.close();
  });

  afterEach(() => {
    for (const c of conns) c.close();
    conns = [];
  });

  afterAll(async () => {
    await relay?.stop();
    console.log(
      `fuzz: ${stats.frames} frames over ${stats.connections} connections, ${stats.requests} well-formed ` +
        `requests answered, ${stats.closed1008} closed with 1008, ${stats.closed1009} with 1009`,
    );
  });

  it("answers frames before hello with NO_HELLO, relay frames with BAD_FRAME, and closes with 1008 after 10", async () => {
    const c = await open();
    const a = known.address;
    const sixteen = new Uint8Array(16);
    const sixtyFour = new Uint8Array(64);
    const frames: Frame[] = [
      { type: "createMailbox", requestId: 1, ownerKey: known.publicKey, signature: sixtyFour },
      { type: "deposit", requestId: 2, address: a, clientMessageId: sixteen, ciphertext: Uint8Array.of(1) },
      { type: "subscribe", requestId: 3, address: a, signature: sixtyFour },
      { type: "unsubscribe", requestId: 4, address: a },
      { type: "ack", requestId: 5, address: a, messageId: sixteen },
      { type: "deleteMailbox", requestId: 6, address: a, signature: sixtyFour },
      { type: "welcome", requestId: 7, version: 1, challenge: a, maxCiphertext: 1, retentionSeconds: 1 },
      { type: "ok", requestId: 8 },
      { type: "deliver", requestId: 9, address: a, messageId: sixteen, receivedAt: 1, ciphertext: a },
      { type: "error", requestId: 10, code: "INTERNAL", message: "not from a client" },
      { type: "hello", requestId: 11, maxVersion: 1 },
    ];
    for (const f of frames) c.sendFrame(f);
    const closed = await within("the 1008 close", c.closed);
    expect(closed).toEqual({ code: 1008, reason: "too many malformed frames" });
    expect(c.problems).toEqual([]);
    expect(c.frames.map((f) => (f.type === "error" ? `${f.requestId} ${f.code}` : f.type))).toEqual([
      ...[1, 2, 3, 4, 5, 6].map((id) => `${id} NO_HELLO`),
      ...[7, 8, 9, 10].map((id) => `${id} BAD_FRAME`),
    ]);
  });

  it("refuses ciphertexts above --max-message-size with TOO_LARGE and frames above maxPayload with 1009", async () => {
    const deposit = (requestId: number, size: number) =>
      encodeFrame({
        type: "deposit",
        requestId,
        address: known.address,
        clientMessageId: randomBytes(16),
        ciphertext: new Uint8Array(size).fill(0x5a),
      });
    const c = await open();
    await c.hello();
    const tokenDeposit = encodeFrame({
      type: "tokenDeposit",
      requestId: 5,
      address: known.address,
      token: randomBytes(32),
      clientMessageId: randomBytes(16),
      ciphertext: new Uint8Array(MAX).fill(0x5b),
    });
    expect(tokenDeposit.length).toBe(MAX_DEPOSIT_FRAME);
    c.send(deposit(1, MAX)); // exactly the cap: stored
    c.send(deposit(2, MAX + 1)); // above the cap, within maxPayload: TOO_LARGE
    c.send(deposit(3, MAX + 32)); // the largest deposit frame within maxPayload
    c.send(tokenDeposit); // the largest deposit frame there is: stored
    const put = encodeFrame({
      type: "putChunk",
      requestId: 6,
      blobId: randomBytes(32),
      writeToken: randomBytes(32),
      index: 0,
      sealedChunk: new Uint8Array(SEALED_CHUNK_BYTES),
    });
    expect(put.length).toBe(MAX_PAYLOAD);
    c.send(put); // the largest frame there is, exactly maxPayload: decoded, and answered
    await c.when("five replies", () => c.frames.length >= 6);
    const byId = (id: number) => c.frames.find((f) => f.requestId === id);
    expect(byId(1)?.type).toBe("ok");
    expect(byId(2)).toMatchObject({ type: "error", code: "TOO_LARGE" });
    expect(byId(3)).toMatchObject({ type: "error", code: "TOO_LARGE" });
    expect(byId(5)?.type).toBe("ok");
    expect(byId(6)).toMatchObject({ type: "error", code: "UNKNOWN_BLOB" });
    expect(c.closeInfo).toBeUndefined();
    expect(deposit(4, MAX_PAYLOAD + 1 - 54).length).toBe(MAX_PAYLOAD + 1);
    c.send(deposit(4, MAX_PAYLOAD + 1 - 54));
    expect((await within("1009", c.closed)).code).toBe(1009);
    expect(c.frames).toHaveLength(6);

    const huge = await open();
    huge.send(new Uint8Array(4 * MiB));
    expect((await within("1009", huge.closed)).code).toBe(1009);

    const text = await open();
    text.send("x".repeat(MAX_PAYLOAD + 1));
    expect((await within("1009", text.closed)).code).toBe(1009);

    // Fragments, each under the limit, adding up to more than it.
    const fragmented = await open();
    const part = new Uint8Array(MAX_PAYLOAD / 2);
    fragmented.ws.send(part, { binary: true, fin: false });
    fragmented.ws.send(part, { binary: true, fin: false });
    fragmented.ws.send(part, { binary: true, fin: true });
    expect((await within("1009", fragmented.closed)).code).toBe(1009);

    // A text frame that is not UTF-8 is a WebSocket protocol error (1007), answered by ws itself.
    const badText = await open();
    badText.ws.send(Buffer.from([0x01, 0x03, 0xff, 0xfe, 0xfd, 0xfc]), { binary: false });
    expect((await within("1007", badText.closed)).code).toBe(1007);
  });

  it("fuzz: thousands of random and mutated frames get typed errors, and memory comes back", {
    timeout: 60_000,
  }, async () => {
    const item = itemArbitrary(known.address);
    const run = (arb: fc.Arbitrary<Item[]>, numRuns: number) =>
      fc.assert(
        fc.asyncProperty(arb, async (items) => {
          await exercise(items);
        }),
        { numRuns, endOnFailure: true },
      );
    const mixed = sessionArbitrary(item, 32);
    // Random bytes only: most decode to nothing, so each connection ends after 10 of them.
    const random = sessionArbitrary(
      fc.uint8Array({ maxLength: 256 }).map((bytes): Item => ({ kind: "binary", bytes })),
      16,
    );

    await run(mixed, 30); // warm-up: code paths compiled, pools allocated
    await connectionsSettle(relay.port);
    await sleep(300);
    const before = await metrics(relay.port);

    await run(random, 600);
    await run(mixed, 900);

    await connectionsSettle(relay.port);
    await sleep(500);
    const after = await metrics(relay.port);
    const heap = (m: Map<string, number>) => m.get("parley_relay_nodejs_heap_size_used_bytes")!;
    const rss = (m: Map<string, number>) => m.get("parley_relay_process_resident_memory_bytes")!;
    console.log(
      `fuzz memory: heap used ${(heap(before) / MiB).toFixed(1)} -> ${(heap(after) / MiB).toFixed(1)} MiB, ` +
        `rss ${(rss(before) / MiB).toFixed(1)} -> ${(rss(after) / MiB).toFixed(1)} MiB`,
    );
    expect(heap(after)).toBeLessThan(heap(before) + 64 * MiB);
    expect(rss(after)).toBeLessThan(rss(before) + 128 * MiB);
    expect(after.get("parley_relay_errors_total")).toBeGreaterThan(before.get("parley_relay_errors_total")!);
    expect(relay.proc.exitCode).toBeNull();
  });

  it("survives garbage below the WebSocket layer: not HTTP, and junk after the upgrade", async () => {
    const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /** Sends `payload` (after a real upgrade, if asked), half-closes, and returns what came back. */
    const raw = (payload: Uint8Array, upgrade: boolean) =>
      new Promise<{ reply: string; accept: string }>((resolve, reject) => {
        const key = randomBytes(16).toString("base64");
        const accept = createHash("sha1")
          .update(key + GUID)
          .digest("base64");
        const s: Socket = connect(relay.port, "127.0.0.1");
        let received = Buffer.alloc(0);
        let upgraded = false;
        const timer = setTimeout(() => {
          s.destroy();
          reject(new Error("the relay did not close the connection"));
        }, 10_000);
        s.on("error", () => {});
        s.on("connect", () => {
          if (!upgrade) s.end(payload);
          else
            s.write(
              "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
            );
        });
        s.on("data", (d: Buffer) => {
          received = Buffer.concat([received, d]);
          if (upgrade && !upgraded && received.includes("\r\n\r\n")) {
            upgraded = true;
            s.end(payload);
          }
        });
        s.on("close", () => {
          clearTimeout(timer);
          resolve({ reply: received.toString("latin1"), accept });
        });
      });
    const junk = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 600 }), 40);
    for (const payload of junk) {
      const { reply } = await raw(payload, false);
      expect(reply === "" || reply.startsWith("HTTP/1.1 4"), reply.slice(0, 40)).toBe(true);
    }
    for (const payload of junk) {
      const { reply, accept } = await raw(payload, true);
      expect(reply).toMatch(/^HTTP\/1\.1 101 /);
      expect(reply).toContain(`Sec-WebSocket-Accept: ${accept}\r\n`);
    }
    await connectionsSettle(relay.port);
    expect(relay.proc.exitCode).toBeNull();
  });

  it("afterwards: the process lives, and hello, create, subscribe, deposit, deliver, ack all work", async () => {
    expect(relay.proc.exitCode).toBeNull();
    expect(relay.proc.signalCode).toBeNull();
    expect((await http(relay.port, "/livez")).status).toBe(200);
    expect((await http(relay.port, "/readyz")).status).toBe(200);
    // Nothing the fuzz sent made a request fail inside the relay.
    expect(relay.output()).not.toMatch(/"level":(50|60)/);

    const key = MailboxKey.generate();
    const owner = await TestClient.connect(relay.port);
    const sender = await TestClient.connect(relay.port);
    conns.push(owner, sender);
    expect((await owner.createMailbox(key)).type).toBe("ok");
    expect((await owner.subscribe(key)).type).toBe("ok");
    const ciphertext = randomBytes(MAX);
    expect((await sender.deposit(key.address, ciphertext, randomBytes(16))).type).toBe("ok");
    const delivered = await owner.next();
    expect(delivered).toMatchObject({ type: "deliver", requestId: 0 });
    if (delivered.type !== "deliver") throw new Error("not a deliver frame");
    expect(toHex(delivered.address)).toBe(key.addressHex);
    expect(toHex(delivered.ciphertext)).toBe(toHex(ciphertext));
    expect((await owner.ack(key.address, delivered.messageId)).type).toBe("ok");
    expect(await owner.ack(key.address, delivered.messageId)).toMatchObject({
      type: "error",
      code: "UNKNOWN_MESSAGE",
    });
  });
});

describe("limits: rate, connections, heartbeat", () => {
  let relay: RelayProcess;
  let conns: { close(): void }[] = [];
  const open = async (options?: WebSocket.ClientOptions) => {
    const c = await Conn.open(relay.port, options);
    conns.push(c);
    return c;
  };

  beforeAll(async () => {
    relay = await startRelay([
      "--storage",
      "memory",
      "--rate-limit",
      "5",
      "--max-connections",
      "5",
      "--heartbeat",
      "1s",
    ]);
  });

  afterEach(async () => {
    for (const c of conns) c.close();
    conns = [];
    await connectionsSettle(relay.port);
  });

  afterAll(async () => {
    await relay?.stop();
  });

  it("answers a burst above --rate-limit with RATE_LIMITED, throttling without closing", async () => {
    const c = await open();
    await c.hello(); // one token of the burst of 10
    const ids = Array.from({ length: 40 }, (_, i) => 100 + i);
    for (const requestId of ids) c.sendFrame({ type: "unsubscribe", requestId, address: new Uint8Array(32) });
    await c.waitFor("the last reply", (f) => f.requestId === ids.at(-1));
    expect(c.problems).toEqual([]);
    const replies = c.frames.filter((f) => ids.includes(f.requestId));
    expect(replies).toHaveLength(ids.length);
    const limited = replies.filter((f) => f.type === "error" && f.code === "RATE_LIMITED");
    expect(limited.length).toBeGreaterThan(0);
    expect(replies.filter((f) => f.type === "ok").length).toBeGreaterThan(0);
    expect(replies.every((f) => f.type === "ok" || (f.type === "error" && f.code === "RATE_LIMITED"))).toBe(
      true,
    );
    // Each answer names its request, in order.
    expect(replies.map((f) => f.requestId)).toEqual(ids);
    // Throttling is not a violation: once the bucket refills, the same connection is served again.
    await new Promise((r) => setTimeout(r, 300));
    c.sendFrame({ type: "unsubscribe", requestId: 999, address: new Uint8Array(32) });
    expect((await c.waitFor("ok", (f) => f.requestId === 999)).type).toBe("ok");

    // A new connection has a fresh bucket.
    const fresh = await open();
    await fresh.hello();
    fresh.sendFrame({ type: "unsubscribe", requestId: 1, address: new Uint8Array(32) });
    expect((await fresh.waitFor("ok", (f) => f.requestId === 1)).type).toBe("ok");
  });

  it("exempts from the rate limit only the first ack of a message in flight on that connection, under its mailbox", async () => {
    const key = MailboxKey.generate();
    const owner = await open();
    await owner.hello();
    const reply = (c: Conn, requestId: number) =>
      c.waitFor(`reply ${requestId}`, (f) => f.requestId === requestId);
    owner.sendFrame({
      type: "createMailbox",
      requestId: 1,
      ownerKey: key.publicKey,
      signature: key.prove(MailboxAction.create, owner.challenge),
    });
    expect((await reply(owner, 1)).type).toBe("ok");
    owner.sendFrame({
      type: "subscribe",
      requestId: 2,
      address: key.address,
      signature: key.prove(MailboxAction.subscribe, owner.challenge),
    });
    expect((await reply(owner, 2)).type).toBe("ok");
    const sender = await open();
    await sender.hello();
    for (const requestId of [1, 2]) {
      sender.sendFrame({
        type: "deposit",
        requestId,
        address: key.address,
        clientMessageId: randomBytes(16),
        ciphertext: randomBytes(100),
      });
      expect((await reply(sender, requestId)).type).toBe("ok");
    }
    await owner.when("two deliveries", () => owner.frames.filter((f) => f.type === "deliver").length === 2);
    const [first, second] = owner.frames.filter((f) => f.type === "deliver");

    // One burst, in one TCP write (so the relay reads it all before any ack is settled): the same
    // ack 30 times; 30 acks of the other delivery under a mailbox it is not in; then its real ack.
    const repeated = Array.from({ length: 30 }, (_, i) => 100 + i);
    const misaddressed = Array.from({ length: 30 }, (_, i) => 200 + i);
    const socket = (owner.ws as unknown as { _socket: Socket })._socket;
    socket.cork();
    for (const requestId of repeated) {
      owner.sendFrame({ type: "ack", requestId, address: key.address, messageId: first!.messageId });
    }
    for (const requestId of misaddressed) {
      owner.sendFrame({ type: "ack", requestId, address: new Uint8Array(32), messageId: second!.messageId });
    }
    owner.sendFrame({ type: "ack", requestId: 300, address: key.address, messageId: second!.messageId });
    socket.uncork();

    // The real acks are exempt: each goes through although the burst emptied the bucket.
    expect((await reply(owner, 100)).type).toBe("ok");
    expect((await reply(owner, 300)).type).toBe("ok");
    const codes = async (ids: number[]) =>
      Promise.all(
        ids.map(async (id) => {
          const f = await reply(owner, id);
          return f.type === "error" ? f.code : f.type;
        }),
      );
    const again = await codes(repeated.slice(1));
    const elsewhere = await codes(misaddressed);
    // The repeats and the misaddressed acks pay like any frame: most find the bucket empty.
    expect(again).toContain("RATE_LIMITED");
    expect(elsewhere).toContain("RATE_LIMITED");
    const served = [...again, ...elsewhere].filter((c) => c !== "RATE_LIMITED");
    expect(served.length, served.join(" ")).toBeLessThanOrEqual(20); // a burst of 10, and some refill
    expect(served.every((c) => c === "UNKNOWN_MESSAGE" || c === "AUTH")).toBe(true);
  });

  it("--max-connections 5: five connections work, the sixth upgrade is refused with 503", async () => {
    const five = await Promise.all(Array.from({ length: 5 }, () => open()));
    for (const c of five) await c.hello();
    const refusedBefore = await metric(relay.port, "parley_relay_rejected_connections_total");

    const sixth = new WebSocket(`ws://127.0.0.1:${relay.port}/`);
    sixth.on("error", () => {});
    conns.push({ close: () => sixth.terminate() });
    const status = await within(
      "the sixth upgrade to be refused",
      new Promise<number>((resolve, reject) => {
        sixth.once("open", () => reject(new Error("the sixth connection was accepted")));
        sixth.once("unexpected-response", (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          sixth.terminate();
        });
      }),
    );
    expect(status).toBe(503);
    expect(await metric(relay.port, "parley_relay_rejected_connections_total")).toBe(refusedBefore + 1);
    // HTTP is not a WebSocket connection: still served at the limit.
    expect((await http(relay.port, "/livez")).status).toBe(200);
    for (const [i, c] of five.entries()) {
      c.sendFrame({ type: "unsubscribe", requestId: 10 + i, address: new Uint8Array(32) });
      expect((await c.waitFor("ok", (f) => f.requestId === 10 + i)).type).toBe("ok");
    }

    // One leaves: there is room again.
    five[0]!.close();
    await connectionsSettle(relay.port, 4);
    const again = await open();
    await again.hello();
  });

  it("--heartbeat 1s: a connection that stops answering pings is terminated, a healthy one stays", async () => {
    const healthy = await open();
    await healthy.hello();
    // Reads everything but never answers a ping.
    const mute = await open({ autoPong: false });
    // Stops reading its socket altogether, so it answers nothing.
    const stalled = await open();
    (stalled.ws as unknown as { _socket: Socket })._socket.pause();

    await within("the mute connection to be terminated", mute.closed, 15_000);
    // The relay forgets the stalled one too; it can only notice once it reads again.
    await connectionsSettle(relay.port, 1);
    (stalled.ws as unknown as { _socket: Socket })._socket.resume();
    await within("the stalled connection to close", stalled.closed, 15_000);

    // The healthy connection answered every ping meanwhile (at least two heartbeats).
    expect(healthy.closeInfo).toBeUndefined();
    healthy.sendFrame({ type: "unsubscribe", requestId: 2, address: new Uint8Array(32) });
    expect((await healthy.waitFor("ok", (f) => f.requestId === 2)).type).toBe("ok");
  });
});

describe("a reader that stops reading", () => {
  const SIZE = 64 * 1024;
  const COUNT = 2048;
  const OUTSTANDING = 1 * MiB;
  let relay: RelayProcess;
  let dataDir = "";
  let conns: { close(): void }[] = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "parley-slow-"));
    relay = await startRelay([
      "--data-dir",
      dataDir,
      "--rate-limit",
      "1000000",
      "--mailbox-max-bytes",
      "1GiB",
      "--max-outstanding-bytes",
      String(OUTSTANDING),
    ]);
  });

  afterEach(() => {
    for (const c of conns) c.close();
    conns = [];
  });

  afterAll(async () => {
    await relay?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("is not buffered for without bound; every message waits in storage and arrives later", async () => {
    const key = MailboxKey.generate();
    const slow = await TestClient.connect(relay.port);
    conns.push(slow);
    expect((await slow.createMailbox(key)).type).toBe("ok");
    expect((await slow.subscribe(key)).type).toBe("ok");
    (slow.ws as unknown as { _socket: Socket })._socket.pause();

    await sleep(200);
    const before = await metrics(relay.port);
    const rss = (m: Map<string, number>) => m.get("parley_relay_process_resident_memory_bytes")!;

    // Deposits: 8 in flight at a time, each message numbered in its first 4 bytes.
    const sender = await Conn.open(relay.port);
    conns.push(sender);
    await sender.hello();
    let sent = 0;
    let acknowledged = 0;
    const refused: Frame[] = [];
    sender.onFrame = (f) => {
      if (f.type !== "ok") refused.push(f);
      acknowledged++;
      if (sent < COUNT) send();
    };
    const send = () => {
      const ciphertext = randomBytes(SIZE);
      ciphertext.writeUInt32BE(sent, 0);
      sender.sendFrame({
        type: "deposit",
        requestId: ++sent,
        address: key.address,
        clientMessageId: randomBytes(16),
        ciphertext,
      });
    };
    for (let i = 0; i < 8; i++) send();
    let peakRss = rss(before);
    await until(
      "every deposit to be acknowledged",
      async () => {
        peakRss = Math.max(peakRss, rss(await metrics(relay.port)));
        return acknowledged === COUNT;
      },
      60_000,
    );
    expect(refused).toEqual([]);
    const after = await metrics(relay.port);
    const pushed = after.get("parley_relay_deliveries_total")! - before.get("parley_relay_deliveries_total")!;
    console.log(
      `slow reader: ${COUNT} x ${SIZE / 1024} KiB deposited, ${pushed} pushed to it, ` +
        `rss ${(rss(before) / MiB).toFixed(1)} -> peak ${(peakRss / MiB).toFixed(1)} MiB`,
    );
    // The relay pushed at most about one window (or cut the reader off), not everything.
    expect(pushed).toBeGreaterThan(0);
    expect(pushed).toBeLessThanOrEqual(OUTSTANDING / SIZE + 1);
    expect(after.get("parley_relay_stored_messages")).toBe(COUNT);
    // Well under what passed through (128 MiB): uncollected garbage and caches, but no backlog.
    expect(peakRss).toBeLessThan(rss(before) + 96 * MiB);

    // The reader comes back as a normal client and gets every message exactly once.
    slow.close();
    const owner = await Conn.open(relay.port);
    conns.push(owner);
    await owner.hello();
    const seen = new Map<number, number>();
    let acks = 0;
    owner.onFrame = (f) => {
      if (f.type === "deliver") {
        const n = Buffer.from(f.ciphertext).readUInt32BE(0);
        seen.set(n, (seen.get(n) ?? 0) + 1);
        owner.sendFrame({
          type: "ack",
          requestId: 1000 + ++acks,
          address: key.address,
          messageId: f.messageId,
        });
      }
    };
    owner.sendFrame({
      type: "subscribe",
      requestId: 1,
      address: key.address,
      signature: key.prove(MailboxAction.subscribe, owner.challenge),
    });
    await until(
      "every message to be delivered and acked",
      () => {
        return owner.frames.filter((f) => f.type === "ok" && f.requestId > 1000).length === COUNT;
      },
      60_000,
    );
    expect(owner.problems).toEqual([]);
    expect(owner.frames.filter((f) => f.type === "error")).toEqual([]);
    expect(seen.size).toBe(COUNT);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(await metric(relay.port, "parley_relay_stored_messages")).toBe(0);
  });
});
