// Parley protocol benchmark (`pnpm bench`). Measures, on this machine and in one run:
//
//   1. Double Ratchet throughput: messages per second, where one message is Session.encrypt on one
//      side followed by Session.decrypt on the other, for 256-byte and 4 KiB plaintexts, in two
//      patterns:
//        - one-way: the same side sends every message (a burst), so each message only advances the
//          symmetric chains (HMACs and an HKDF on each side) around the AEAD;
//        - alternating: the speakers take turns, so every decrypt performs a DH ratchet step
//          (two X25519 agreements and one X25519 key generation).
//      The plaintext is a real padded payload: an encodePayload text payload that fills exactly the
//      256- or 4096-byte bucket, encoded once before timing (so payload encoding is not measured).
//   2. Handshakes per second, classical (a version 1 invitation: X25519 only) and hybrid (a version 2
//      invitation: X25519 and ML-KEM-768, PROTOCOL.md §5.5) in the same run, rounds interleaved:
//      createInvitation + InvitationBook.add + decodeInvitation + acceptInvitation (carrying a first
//      message) + InvitationBook.accept (which decrypts it); the hybrid one also seals the hosted KEM
//      key (hostedKemKeyUpload, the inviter) and opens and checks it (openHostedKemKey, the accepter),
//      but no relay round trip is timed. The ratio is the median of the per-round ratios. Beside them,
//      the bytes each version puts on the wire: the code's length, the first message (the Accept
//      carrying a 256-byte payload) and the hosted key blob. Every handshake uses fresh identities,
//      generated in batches outside the timed region.
//   3. Baselines: raw AEAD encrypt + decrypt of the same plaintexts, with an AAD as long as the
//      ratchet's (session AD + v2 message header) and a fresh nonce per message, once with
//      node:crypto's ChaCha20-Poly1305 (OpenSSL, native; OpenSSL has no XChaCha20) and once with
//      @noble/ciphers' XChaCha20-Poly1305 (the pure-JS implementation and the cipher the protocol
//      uses for v2 Messages). The first is the reference for the ratios; the second shows how much
//      of the gap is the cipher implementation rather than the ratchet.
//   4. Post-quantum sessions (PROTOCOL.md §6.7, bench/pq.ts): their throughput as a ratio to
//      classical sessions built the same way, one-way and alternating, with plaintexts that leave
//      padding room for KEM pieces; and the bytes a simulated conversation costs in each.
//
// Method: each measurement is warmed up, then run for a fixed wall time (BENCH_SECONDS, default 1)
// ROUNDS times, interleaved (node, ratchet one-way, noble, ratchet alternating, node, ...) so that
// machine noise hits baselines and ratchet alike. Figures are medians over the rounds; each ratio is
// the median of the per-round ratios. `--json` prints one JSON object instead of the table (progress
// goes to stderr either way). Nothing here asserts anything about the numbers.
import { createCipheriv, createDecipheriv } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import {
  acceptInvitation,
  createInvitation,
  decodeInvitation,
  encodeFrame,
  encodePayload,
  HEADER_LENGTH,
  hostedKemKeyUpload,
  Identity,
  InvitationBook,
  MAX_PADDED_LENGTH,
  MAX_TEXT_BYTES,
  MailboxKey,
  newMessageId,
  openHostedKemKey,
  type Session,
} from "../src/index.js";
import {
  alternating,
  type BytesResult,
  conversationBytes,
  directPair,
  exchangesPer1000,
  oneWay,
  PQ_PLAINTEXTS,
} from "./pq.js";

const SIZES = [256, 4096] as const;
const ROUNDS = 3;
const SECONDS = secondsFromEnv(process.env.BENCH_SECONDS);
const WARMUP_SECONDS = Math.max(0.1, SECONDS * 0.3);
const HANDSHAKE_BATCH = 8;
const TAG_LENGTH = 16;
/** The ratchet authenticates session AD (32 bytes) || header; the baselines use an AAD this long. */
const AAD_LENGTH = 32 + HEADER_LENGTH;
const RELAY = "wss://relay.example.org";
const INVITER_MAILBOX = MailboxKey.generate().address;
const ACCEPTER_MAILBOX = MailboxKey.generate().address;
const FIRST_MESSAGE = textPayload(256);
const JSON_OUTPUT = process.argv.includes("--json");

type Op = () => Uint8Array;

interface Series {
  median: number;
  runs: number[];
}

interface Compared extends Series {
  vsNode: number;
  vsNoble?: number;
}

interface SizeResult {
  bytes: number;
  nodeCrypto: Series;
  nobleCiphers: Compared;
  ratchetOneWay: Compared;
  ratchetAlternating: Compared;
}

interface Parties {
  inviter: Identity;
  accepter: Identity;
  book: InvitationBook;
}

interface SessionPair {
  inviter: Session;
  accepter: Session;
}

type HandshakeKind = "classical" | "hybrid";

interface Handshakes {
  classical: Series;
  hybrid: Series & { vsClassical: number };
  bytes: Record<HandshakeKind, WireBytes>;
}

/** What one handshake of each kind puts on the wire (a 256-byte first payload). */
interface WireBytes {
  /** Characters of the invitation code. */
  code: number;
  /** The Accept: the first message the accepter deposits (and every repeat until a reply). */
  firstMessage: number;
  /** The hosted KEM key's createBlob and putChunk frames (0 for classical). */
  hostedKeyFrames: number;
}

function secondsFromEnv(value: string | undefined): number {
  const n = Number(value);
  return value && Number.isFinite(n) && n > 0 ? n : 1;
}

// ---------------------------------------------------------------------------------------------
// Timing

/** Calls `op` for about `seconds` of wall time; returns calls per second. */
function measure(seconds: number, op: Op): number {
  const start = performance.now();
  const end = start + seconds * 1000;
  let calls = 0;
  let chunk = 1;
  let now = start;
  while (now < end) {
    const chunkStart = now;
    for (let i = 0; i < chunk; i++) op();
    calls += chunk;
    now = performance.now();
    // Read the clock about once a millisecond, not after every fast call.
    if (now - chunkStart < 1 && chunk < 4096) chunk *= 2;
  }
  return calls / ((now - start) / 1000);
}

/** Handshakes per second; identities for each batch are generated before its timing starts. */
function measureHandshakes(seconds: number, kind: HandshakeKind): number {
  let elapsed = 0;
  let count = 0;
  while (elapsed < seconds * 1000) {
    const batch = Array.from({ length: HANDSHAKE_BATCH }, newParties);
    const start = performance.now();
    for (const parties of batch) handshake(parties, kind);
    elapsed += performance.now() - start;
    count += batch.length;
  }
  return count / (elapsed / 1000);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function series(runs: number[]): Series {
  return { median: median(runs), runs };
}

function ratios(runs: readonly number[], reference: readonly number[]): number {
  return median(runs.map((r, i) => r / reference[i]!));
}

// ---------------------------------------------------------------------------------------------
// The operations measured

/** A text payload padded to exactly `size` bytes (the largest text its bucket holds). */
function textPayload(size: number): Uint8Array {
  const overhead = MAX_PADDED_LENGTH - 1 - MAX_TEXT_BYTES;
  const text = "lorem ipsum dolor sit amet ".repeat(size).slice(0, size - 1 - overhead);
  const padded = encodePayload({ type: "text", id: newMessageId(), sentAt: Date.now(), text });
  if (padded.length !== size) throw new Error(`payload is ${padded.length} bytes, wanted ${size}`);
  return padded;
}

/** A fresh 12-byte nonce per call: a little-endian counter. */
function nonceCounter(): () => Uint8Array {
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  let n = 0;
  return () => {
    n += 1;
    view.setUint32(0, n % 2 ** 32, true);
    view.setUint32(4, Math.floor(n / 2 ** 32), true);
    return nonce;
  };
}

function nodeCryptoOp(plaintext: Uint8Array): Op {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const aad = crypto.getRandomValues(new Uint8Array(AAD_LENGTH));
  const nextNonce = nonceCounter();
  const options = { authTagLength: TAG_LENGTH };
  return () => {
    const nonce = nextNonce();
    const cipher = createCipheriv("chacha20-poly1305", key, nonce, options);
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    const ciphertext = cipher.update(plaintext);
    cipher.final();
    const tag = cipher.getAuthTag();
    const decipher = createDecipheriv("chacha20-poly1305", key, nonce, options);
    decipher.setAAD(aad, { plaintextLength: plaintext.length });
    decipher.setAuthTag(tag);
    const out = decipher.update(ciphertext);
    decipher.final();
    return out;
  };
}

function nobleOp(plaintext: Uint8Array): Op {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const aad = crypto.getRandomValues(new Uint8Array(AAD_LENGTH));
  return () => {
    // A random 24-byte nonce, drawn as the ratchet draws it for each v2 Message.
    const nonce = crypto.getRandomValues(new Uint8Array(24));
    const sealed = xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
    return xchacha20poly1305(key, nonce, aad).decrypt(sealed);
  };
}

/** Every message from the inviter to the accepter: no DH ratchet step after the first. */
function oneWayOp(pair: SessionPair, plaintext: Uint8Array): Op {
  return () => pair.accepter.decrypt(pair.inviter.encrypt(plaintext));
}

/** The speakers take turns: every decrypt performs a DH ratchet step. */
function alternatingOp(pair: SessionPair, plaintext: Uint8Array): Op {
  let inviterSpeaks = true;
  return () => {
    const from = inviterSpeaks ? pair.inviter : pair.accepter;
    const to = inviterSpeaks ? pair.accepter : pair.inviter;
    inviterSpeaks = !inviterSpeaks;
    return to.decrypt(from.encrypt(plaintext));
  };
}

function newParties(): Parties {
  return { inviter: Identity.generate(), accepter: Identity.generate(), book: new InvitationBook() };
}

/**
 * The whole first contact, as two real parties run it (see scripts/demo.ts). Hybrid: the inviter
 * also seals its KEM key for the relay, and the accepter opens and checks what it fetched (the
 * relay itself is not in the loop).
 */
function handshake(
  p: Parties,
  kind: HandshakeKind,
): SessionPair & { plaintext: Uint8Array; code: string; message: Uint8Array; hostedKeyFrames: number } {
  const postQuantum = kind === "hybrid";
  const { code, pending } = createInvitation(p.inviter, {
    relayUrl: RELAY,
    mailbox: INVITER_MAILBOX,
    postQuantum,
  });
  p.book.add(pending);
  const upload = postQuantum ? hostedKemKeyUpload(pending) : null;
  const invitation = decodeInvitation(code);
  const accepted = acceptInvitation(p.accepter, invitation, {
    mailbox: ACCEPTER_MAILBOX,
    relayUrl: RELAY,
    plaintext: FIRST_MESSAGE,
    kemPublicKey: upload ? openHostedKemKey(invitation, upload.sealedChunk) : null,
  });
  const contact = p.book.accept(p.inviter, accepted.message);
  if (contact.postQuantum !== postQuantum) throw new Error(`${kind} handshake: wrong kind of session`);
  const hostedKeyFrames = upload
    ? encodeFrame({ type: "createBlob", requestId: 1, ...upload }).length +
      encodeFrame({ type: "putChunk", requestId: 2, index: 0, ...upload }).length
    : 0;
  return {
    inviter: contact.session,
    accepter: accepted.session,
    plaintext: contact.plaintext,
    code,
    message: accepted.message,
    hostedKeyFrames,
  };
}

/** A session pair past the handshake: both sides have sent and received, nothing is Accept-wrapped. */
function establishedPair(plaintext: Uint8Array): SessionPair {
  const pair = handshake(newParties(), "classical");
  pair.accepter.decrypt(pair.inviter.encrypt(plaintext));
  pair.inviter.decrypt(pair.accepter.encrypt(plaintext));
  return pair;
}

/** Not a benchmark assertion: only makes sure each operation does what it is timed for. */
function checkRoundTrip(name: string, op: Op, plaintext: Uint8Array): void {
  if (Buffer.compare(op(), plaintext) !== 0) throw new Error(`${name}: round trip changed the plaintext`);
}

// ---------------------------------------------------------------------------------------------
// Running

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

function benchSize(size: number): SizeResult {
  const plaintext = textPayload(size);
  const ops = {
    node: nodeCryptoOp(plaintext),
    oneWay: oneWayOp(establishedPair(plaintext), plaintext),
    noble: nobleOp(plaintext),
    alternating: alternatingOp(establishedPair(plaintext), plaintext),
  };
  const runs = {
    node: [] as number[],
    oneWay: [] as number[],
    noble: [] as number[],
    alternating: [] as number[],
  };
  for (const [name, op] of Object.entries(ops)) {
    checkRoundTrip(name, op, plaintext);
    measure(WARMUP_SECONDS, op);
  }
  for (let round = 1; round <= ROUNDS; round++) {
    progress(`${size} B: round ${round} of ${ROUNDS}`);
    for (const [name, op] of Object.entries(ops)) runs[name as keyof typeof ops].push(measure(SECONDS, op));
  }
  const compared = (r: number[], withNoble: boolean): Compared => ({
    ...series(r),
    vsNode: ratios(r, runs.node),
    ...(withNoble ? { vsNoble: ratios(r, runs.noble) } : {}),
  });
  return {
    bytes: size,
    nodeCrypto: series(runs.node),
    nobleCiphers: compared(runs.noble, false),
    ratchetOneWay: compared(runs.oneWay, true),
    ratchetAlternating: compared(runs.alternating, true),
  };
}

interface PqResult {
  plaintext: string;
  oneWay: { classical: Series; postQuantum: Series; ratio: number };
  alternating: { classical: Series; postQuantum: Series; ratio: number };
  kemExchangesPer1000Alternating: number;
}

/** Post-quantum against classical sessions, interleaved round by round (bench/pq.ts). */
function benchPostQuantum(): PqResult[] {
  return PQ_PLAINTEXTS.map(({ label, plaintext }) => {
    const ops = {
      classicalOneWay: oneWay(directPair(false), plaintext),
      pqOneWay: oneWay(directPair(true), plaintext),
      classicalAlternating: alternating(directPair(false), plaintext),
      pqAlternating: alternating(directPair(true), plaintext),
    };
    const runs = Object.fromEntries(Object.keys(ops).map((k) => [k, [] as number[]])) as Record<
      keyof typeof ops,
      number[]
    >;
    for (const [name, op] of Object.entries(ops)) {
      checkRoundTrip(name, op, plaintext);
      measure(WARMUP_SECONDS, op);
    }
    for (let round = 1; round <= ROUNDS; round++) {
      progress(`post-quantum, ${label}: round ${round} of ${ROUNDS}`);
      for (const [name, op] of Object.entries(ops)) runs[name as keyof typeof ops].push(measure(SECONDS, op));
    }
    return {
      plaintext: label,
      oneWay: {
        classical: series(runs.classicalOneWay),
        postQuantum: series(runs.pqOneWay),
        ratio: ratios(runs.pqOneWay, runs.classicalOneWay),
      },
      alternating: {
        classical: series(runs.classicalAlternating),
        postQuantum: series(runs.pqAlternating),
        ratio: ratios(runs.pqAlternating, runs.classicalAlternating),
      },
      kemExchangesPer1000Alternating: exchangesPer1000(plaintext),
    };
  });
}

function benchHandshakes(): Handshakes {
  const kinds: HandshakeKind[] = ["classical", "hybrid"];
  const bytes = {} as Record<HandshakeKind, WireBytes>;
  for (const kind of kinds) {
    const check = handshake(newParties(), kind);
    if (Buffer.compare(check.plaintext, FIRST_MESSAGE) !== 0)
      throw new Error(`${kind} handshake: first message changed`);
    bytes[kind] = {
      code: check.code.length,
      firstMessage: check.message.length,
      hostedKeyFrames: check.hostedKeyFrames,
    };
    measureHandshakes(WARMUP_SECONDS, kind);
  }
  const runs: Record<HandshakeKind, number[]> = { classical: [], hybrid: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    progress(`handshakes: round ${round} of ${ROUNDS}`);
    for (const kind of kinds) runs[kind].push(measureHandshakes(SECONDS, kind));
  }
  return {
    classical: series(runs.classical),
    hybrid: { ...series(runs.hybrid), vsClassical: ratios(runs.hybrid, runs.classical) },
    bytes,
  };
}

function environment() {
  const cpu = cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: cpu[0]?.model.trim() ?? "unknown",
    cpus: cpu.length,
    loadAverage1m: loadavg()[0] ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Output

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function spread(s: Series): string {
  return `${Math.round(((Math.max(...s.runs) - Math.min(...s.runs)) / s.median) * 100)}%`;
}

function row(cells: readonly string[]): string {
  const widths = [7, 40, 11, 9, 9, 9, 7];
  return cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" ");
}

function seriesRow(size: number, name: string, s: Series & { vsNode?: number; vsNoble?: number }): string {
  const mib = (s.median * size) / 2 ** 20;
  return row([
    `${size} B`,
    name,
    integer.format(s.median),
    mib.toFixed(1),
    (s.vsNode ?? 1).toPrecision(3),
    s.vsNoble === undefined ? "-" : s.vsNoble.toPrecision(3),
    spread(s),
  ]);
}

function printPostQuantum(pq: PqResult[], bytes: BytesResult): string[] {
  const lines = [
    "",
    "Post-quantum sessions (§6.7) vs classical, same run; encrypt + decrypt per message (ratio = median of per-round ratios)",
    `${"plaintext".padEnd(30)} ${"pattern".padEnd(12)} ${"classical/s".padStart(12)} ${"pq/s".padStart(10)} ${"pq/classical".padStart(13)} ${"KEM steps/1000".padStart(15)}`,
  ];
  for (const r of pq) {
    for (const [pattern, x] of [
      ["one-way", r.oneWay],
      ["alternating", r.alternating],
    ] as const) {
      lines.push(
        `${r.plaintext.padEnd(30)} ${pattern.padEnd(12)} ${integer.format(x.classical.median).padStart(12)} ` +
          `${integer.format(x.postQuantum.median).padStart(10)} ${x.ratio.toFixed(3).padStart(13)} ` +
          `${(pattern === "alternating" ? String(r.kemExchangesPer1000Alternating) : "0").padStart(15)}`,
      );
    }
  }
  lines.push(
    "",
    `Bytes: a simulated conversation of ${bytes.messages} messages (texts of 1-3000 bytes, read receipts; bench/pq.ts)`,
    `  mean wire bytes per message: classical ${bytes.classicalMeanBytes.toFixed(1)}, post-quantum ` +
      `${bytes.postQuantumMeanBytes.toFixed(1)} (+${(bytes.postQuantumMeanBytes - bytes.classicalMeanBytes).toFixed(2)})`,
    `  post-quantum messages that left their padding bucket: ${bytes.leftBucket} of ${bytes.messages} ` +
      `(payloads filling their bucket exactly: ${bytes.fullBucketPayloads})`,
    `  KEM exchanges completed: ${bytes.kemExchanges}, one per ${bytes.messagesPerExchange.toFixed(1)} messages`,
  );
  return lines;
}

function printTable(
  env: ReturnType<typeof environment>,
  sizes: SizeResult[],
  handshakes: Handshakes,
  pq: PqResult[],
  pqBytes: BytesResult,
): void {
  const lines = [
    `Parley protocol benchmark: node ${env.node}, ${env.platform}, ${env.cpu} x${env.cpus}, ` +
      `load ${env.loadAverage1m.toFixed(2)}`,
    `Each figure: median of ${ROUNDS} runs of ${SECONDS} s after warm-up, interleaved with the baselines; ` +
      "spread = (max - min) / median.",
    "Plaintext: an encodePayload text payload padded to exactly 256 / 4096 bytes (encoded once, untimed).",
    `Baselines: same plaintext, ${AAD_LENGTH}-byte AAD (as the ratchet's session AD + header), fresh nonce ` +
      "per message.",
    "",
    "Encrypt + decrypt, one message per iteration (MiB/s of plaintext; ratios = median of per-round ratios)",
    row(["size", "implementation", "msgs/s", "MiB/s", "vs node", "vs noble", "spread"]),
  ];
  for (const s of sizes) {
    lines.push(
      seriesRow(s.bytes, "node:crypto chacha20-poly1305", s.nodeCrypto),
      seriesRow(s.bytes, "@noble/ciphers xchacha20poly1305", s.nobleCiphers),
      seriesRow(s.bytes, "ratchet, one-way run (no DH step)", s.ratchetOneWay),
      seriesRow(s.bytes, "ratchet, alternating (DH step each msg)", s.ratchetAlternating),
    );
  }
  const runsOf = (s: Series) =>
    `runs: ${s.runs.map((r) => integer.format(r)).join(", ")}; spread ${spread(s)}`;
  const { classical, hybrid, bytes } = handshakes;
  const bytesOf = (b: WireBytes) =>
    `code ${b.code} chars, first message ${integer.format(b.firstMessage)} B` +
    (b.hostedKeyFrames ? `, hosted key ${integer.format(b.hostedKeyFrames)} B (createBlob + putChunk)` : "");
  lines.push(
    "",
    "Handshakes: createInvitation + decodeInvitation + acceptInvitation + InvitationBook.accept (1st message);",
    "hybrid also seals and opens the hosted KEM key (no relay round trip)",
    `classical (v1, X25519):            ${integer.format(classical.median)} handshakes/s (${runsOf(classical)})`,
    `hybrid (v2, X25519 + ML-KEM-768):  ${integer.format(hybrid.median)} handshakes/s (${runsOf(hybrid)}); ` +
      `${hybrid.vsClassical.toPrecision(3)} x classical`,
    `bytes, classical: ${bytesOf(bytes.classical)}`,
    `bytes, hybrid:    ${bytesOf(bytes.hybrid)}`,
    ...printPostQuantum(pq, pqBytes),
  );
  console.log(lines.join("\n"));
}

function main(): void {
  const env = environment();
  const startedAt = performance.now();
  const sizes = SIZES.map(benchSize);
  const handshakes = benchHandshakes();
  const postQuantum = benchPostQuantum();
  progress("post-quantum: simulated conversation");
  const pqBytes = conversationBytes();
  const totalSeconds = (performance.now() - startedAt) / 1000;
  progress(`done in ${totalSeconds.toFixed(1)} s`);
  if (JSON_OUTPUT) {
    const plaintext = "encodePayload text payload padded to exactly the bucket size";
    const settings = { secondsPerRun: SECONDS, rounds: ROUNDS, aadBytes: AAD_LENGTH, plaintext };
    console.log(
      JSON.stringify({
        environment: env,
        settings,
        messages: sizes,
        handshakes,
        postQuantum: { throughput: postQuantum, bytes: pqBytes },
        totalSeconds,
      }),
    );
  } else {
    printTable(env, sizes, handshakes, postQuantum, pqBytes);
  }
}

main();
