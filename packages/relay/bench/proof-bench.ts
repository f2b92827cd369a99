// Ownership-proof benchmark (`pnpm bench:proofs`): what one proof costs the relay with Node's
// OpenSSL Ed25519 (src/ed25519.ts) against the pure-JavaScript `Verify` of @parley/protocol (noble),
// measured in the same run, interleaved, as a ratio. Cases: a valid proof under a key seen before
// (subscribe: the key object is cached), under a new key (createMailbox), a bad proof (OpenSSL's
// "no", which the relay checks again with noble only within its second-opinion budget), and what
// producing a proof costs a client (noble) and an attacker (OpenSSL). Nothing is asserted; `--json`
// prints one JSON object.
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { MailboxAction, MailboxKey, mailboxProofMessage, verifyMailboxProof } from "@parley/protocol";
import { verifyEd25519 } from "../src/ed25519.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const N = Number(process.env.BENCH_PROOFS ?? 300);

const keys = Array.from({ length: N }, () => MailboxKey.generate());
const challenge = randomBytes(32);
const proofs = keys.map((k) => {
  const signature = k.prove(MailboxAction.subscribe, challenge);
  return {
    key: k,
    signature,
    message: mailboxProofMessage(MailboxAction.subscribe, challenge, k.address),
    bad: Uint8Array.from(signature, (b, i) => (i === 40 ? b ^ 1 : b)),
  };
});

/** Microseconds per call of `f` over every proof. */
function time(f: (p: (typeof proofs)[number]) => unknown): number {
  const start = performance.now();
  for (const p of proofs) f(p);
  return ((performance.now() - start) * 1000) / proofs.length;
}

const attackerKey = generateKeyPairSync("ed25519").privateKey;

const cases = {
  "noble, valid proof": (p: (typeof proofs)[number]) =>
    verifyMailboxProof(p.key.publicKey, MailboxAction.subscribe, challenge, p.key.address, p.signature),
  "noble, bad proof": (p: (typeof proofs)[number]) =>
    verifyMailboxProof(p.key.publicKey, MailboxAction.subscribe, challenge, p.key.address, p.bad),
  "OpenSSL, valid proof, known key": (p: (typeof proofs)[number]) =>
    verifyEd25519(p.key.publicKey, p.message, p.signature),
  "OpenSSL, bad proof, known key": (p: (typeof proofs)[number]) =>
    verifyEd25519(p.key.publicKey, p.message, p.bad),
  "client: making a proof": (p: (typeof proofs)[number]) => p.key.prove(MailboxAction.subscribe, challenge),
  "attacker: making a proof (OpenSSL)": (p: (typeof proofs)[number]) => sign(null, p.message, attackerKey),
};
const best = new Map<string, number>(Object.keys(cases).map((k) => [k, Number.POSITIVE_INFINITY]));
let fresh = Number.POSITIVE_INFINITY;
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, f] of Object.entries(cases)) best.set(name, Math.min(best.get(name)!, time(f)));
  // New keys each round: the key object is imported once, as for a createMailbox.
  const made = Array.from({ length: 100 }, () => {
    const k = MailboxKey.generate();
    return {
      k,
      m: mailboxProofMessage(MailboxAction.create, challenge, k.address),
      s: k.prove(MailboxAction.create, challenge),
    };
  });
  const start = performance.now();
  for (const { k, m, s } of made) verifyEd25519(k.publicKey, m, s);
  fresh = Math.min(fresh, ((performance.now() - start) * 1000) / made.length);
}
const noble = best.get("noble, valid proof")!;
const report = {
  proofs: N,
  rounds: ROUNDS,
  microseconds: { ...Object.fromEntries(best), "OpenSSL, valid proof, new key": fresh },
  ratioNativeToNoble: {
    validKnownKey: best.get("OpenSSL, valid proof, known key")! / noble,
    validNewKey: fresh / noble,
    bad: best.get("OpenSSL, bad proof, known key")! / best.get("noble, bad proof")!,
  },
  relayCostToAttackerCost: {
    noble: noble / best.get("attacker: making a proof (OpenSSL)")!,
    openssl: best.get("OpenSSL, valid proof, known key")! / best.get("attacker: making a proof (OpenSSL)")!,
  },
};
if (process.argv.includes("--json")) {
  process.stdout.write(`${JSON.stringify(report)}\n`);
} else {
  const rows = Object.entries(report.microseconds).map(
    ([k, v]) => `  ${k.padEnd(34)} ${v.toFixed(1).padStart(8)} µs`,
  );
  process.stdout.write(
    [
      `proof-bench: best of ${ROUNDS} rounds of ${N} proofs, per proof`,
      ...rows,
      `  OpenSSL / noble: valid, known key ${report.ratioNativeToNoble.validKnownKey.toFixed(3)}; valid, new key ${report.ratioNativeToNoble.validNewKey.toFixed(3)}; bad ${report.ratioNativeToNoble.bad.toFixed(3)}`,
      `  checking a proof costs the relay ${report.relayCostToAttackerCost.openssl.toFixed(1)}x what making it costs an attacker with OpenSSL (noble: ${report.relayCostToAttackerCost.noble.toFixed(1)}x)`,
      "",
    ].join("\n"),
  );
}
