// Ownership proofs (PROTOCOL.md §8.3): a signature by the mailbox's owner key over the connection's
// challenge, checked at the pace of --proof-rate for the connection and --proof-rate-per-source for
// its source, so that a flood of proofs cannot take the relay's CPU.
import { type MailboxAction, mailboxProofMessage, verifyMailboxProof } from "@parley/protocol";
import type { Connection } from "./connection.js";
import type { Connections } from "./connections.js";
import type { RelayContext } from "./context.js";
import { verifyEd25519 } from "./ed25519.js";
import { Pace } from "./sources.js";

/** A proof waits at most this long for its turn (--proof-rate); beyond, it is answered RATE_LIMITED. */
const MAX_PROOF_WAIT_MS = 2_000;
/**
 * OpenSSL's "no" to a proof is checked again with noble (see ed25519.ts): at most this many per
 * second for the whole relay, so that bad proofs cannot buy back the cost OpenSSL saves.
 */
const SECOND_OPINIONS_PER_SECOND = 20;

export type ProofVerdict = "valid" | "invalid" | "throttled";

export class Proofs {
  private readonly secondOpinions = new Pace(SECOND_OPINIONS_PER_SECOND, SECOND_OPINIONS_PER_SECOND);

  constructor(
    private readonly ctx: RelayContext,
    private readonly connections: Connections,
  ) {}

  /**
   * Checks an ownership proof at the pace of --proof-rate for the connection and
   * --proof-rate-per-source for its source: a proof waits for its turn, up to MAX_PROOF_WAIT_MS,
   * or is "throttled". OpenSSL decides (ed25519.ts); its "unsure" is settled by noble while the
   * relay's second-opinion budget lasts, and is "throttled" beyond it.
   */
  async check(
    conn: Connection,
    ownerKey: Uint8Array,
    action: MailboxAction,
    address: Uint8Array,
    signature: Uint8Array,
    tokenHash?: Uint8Array,
  ): Promise<ProofVerdict> {
    const { metrics } = this.ctx;
    const now = performance.now();
    const source = this.connections.sourceState(conn);
    const wait = Math.max(conn.proofs.wait(now), source?.proofs.wait(now) ?? 0);
    if (wait > MAX_PROOF_WAIT_MS) {
      metrics.proofs.inc({ result: "throttled" });
      return "throttled";
    }
    conn.proofs.book(now + wait);
    source?.proofs.book(now + wait);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const message = mailboxProofMessage(action, conn.challenge, address, tokenHash);
    let verdict = verifyEd25519(ownerKey, message, signature);
    if (verdict === "unsure") {
      const t = performance.now();
      if (this.secondOpinions.wait(t) > 0) {
        metrics.proofs.inc({ result: "throttled" });
        return "throttled";
      }
      this.secondOpinions.book(t);
      metrics.proofSecondOpinions.inc();
      verdict = verifyMailboxProof(ownerKey, action, conn.challenge, address, signature, tokenHash)
        ? "valid"
        : "invalid";
    }
    metrics.proofs.inc({ result: verdict });
    return verdict;
  }

  /**
   * Whether the frame's proof is the stored owner's, for `action`; if not, the frame is answered
   * (UNKNOWN_MAILBOX, AUTH or RATE_LIMITED) and false returned.
   */
  async ownerProves(
    conn: Connection,
    f: { requestId: number; address: Uint8Array; signature: Uint8Array },
    action: MailboxAction,
    tokenHash?: Uint8Array,
  ): Promise<boolean> {
    const owner = await this.ctx.storage.mailboxOwner(f.address);
    if (!owner) {
      this.connections.error(conn, f.requestId, "UNKNOWN_MAILBOX", "no such mailbox");
      return false;
    }
    const proof = await this.check(conn, owner, action, f.address, f.signature, tokenHash);
    if (proof === "valid") return true;
    this.refuse(conn, f.requestId, proof);
    return false;
  }

  /** Answers a request whose proof did not pass. */
  refuse(conn: Connection, requestId: number, proof: Exclude<ProofVerdict, "valid">): void {
    if (proof === "throttled")
      this.connections.error(conn, requestId, "RATE_LIMITED", "too many ownership proofs; slow down");
    else
      this.connections.error(conn, requestId, "AUTH", "ownership proof does not verify for this connection");
  }
}
