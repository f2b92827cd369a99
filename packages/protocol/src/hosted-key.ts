// The inviter's ML-KEM-768 encapsulation key, hosted at the relay (PROTOCOL.md §4.6). At 1184
// bytes it would more than double an invitation code, so the code carries only a 32-byte
// commitment to it, and the key travels as a one-chunk relay blob (§14.2) sealed like a file
// (§14.1). The blob's id, its read token and its sealing key are derived from the commitment and
// the prekey, which only holders of the code know: the code does not grow by them, and the relay
// cannot tell which mailbox or Accept a blob belongs to. Whatever the relay serves, the accepter
// checks it against the signed commitment and refuses to go on without a key that matches, so
// withholding or swapping the key cannot downgrade a session to X25519 alone.
import { concat, equalConstantTime, wipe } from "./_bytes.js";
import { BLOB_TOKEN_LENGTH, blobTokenHash } from "./blob.js";
import { hkdfSha256, KEY_LENGTH, label, sha256 } from "./crypto.js";
import { CryptoError, HandshakeError } from "./errors.js";
import { FILE_CHUNK_OVERHEAD, FileCipher } from "./file.js";
import type { Invitation, PendingInvitation } from "./invitation.js";
import { ML_KEM_PUBLIC_KEY_LENGTH, mlKemPublicKeyProblem } from "./kem.js";

/** The commitment in a version 2 invitation: SHA-256, 32 bytes. */
export const KEM_COMMITMENT_LENGTH = 32;
/** The hosted key is one chunk: index 0, the last. */
export const HOSTED_KEM_KEY_CHUNK_COUNT = 1;
/** The sealed hosted key: the 1184-byte key and the chunk's tag (§14.1). */
export const HOSTED_KEM_KEY_SEALED_SIZE = ML_KEM_PUBLIC_KEY_LENGTH + FILE_CHUNK_OVERHEAD;

/**
 * C = SHA-256("parley/v2/kem-commitment" || ek): what a version 2 invitation signs in place of the
 * 1184-byte key. SHA-256's second-preimage resistance is what stops a relay from serving another key
 * that matches.
 */
export function kemCommitment(publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== ML_KEM_PUBLIC_KEY_LENGTH)
    throw new RangeError(`ML-KEM-768 public key: expected ${ML_KEM_PUBLIC_KEY_LENGTH} bytes`);
  return sha256(concat(label("kemCommitment"), publicKey));
}

/** Where the accepter fetches the hosted key: the blob (§14.2), its read token, one chunk. */
export interface HostedKemKeyLocation {
  readonly blobId: Uint8Array;
  readonly readToken: Uint8Array;
  /** Always 1: `getChunk` index 0. */
  readonly chunkCount: number;
  /** Always 1200 (HOSTED_KEM_KEY_SEALED_SIZE). */
  readonly sealedSize: number;
}

/**
 * What the inviter uploads: a `createBlob` (blob id, write-token hash, chunk count 1, sealed size
 * 1200, one read-token hash) and a `putChunk` (write token, index 0, the sealed chunk).
 */
export interface HostedKemKeyUpload extends HostedKemKeyLocation {
  /** Derived from the inviter's KEM seed: only the inviter can write or delete the blob. */
  readonly writeToken: Uint8Array;
  readonly writeTokenHash: Uint8Array;
  /** The one read-token hash of `createBlob`. */
  readonly readTokenHashes: readonly Uint8Array[];
  /** Chunk 0 (the last): the encapsulation key sealed under the derived file key (§14.1). */
  readonly sealedChunk: Uint8Array;
}

/** HKDF-SHA256(ikm = C || prekey, salt = none, info = label, 32): blob id, read token, file key. */
function hostDerivations(commitment: Uint8Array, prekey: Uint8Array) {
  const ikm = concat(commitment, prekey);
  const derive = (name: "kemBlobId" | "kemBlobReadToken" | "kemBlobFileKey") =>
    hkdfSha256(ikm, new Uint8Array(0), label(name), KEY_LENGTH);
  const out = {
    blobId: derive("kemBlobId"),
    readToken: derive("kemBlobReadToken"),
    fileKey: derive("kemBlobFileKey"),
  };
  wipe(ikm);
  return out;
}

function requireCommitment(invitation: Pick<Invitation, "version" | "kemCommitment">): Uint8Array {
  if (invitation.version !== 2 || invitation.kemCommitment === null)
    throw new RangeError("a version 1 (classical) invitation has no hosted KEM key");
  return invitation.kemCommitment;
}

/**
 * The accepter's side: where the invitation's KEM key is hosted on its relay (the invitation's
 * relay URL). Fetch chunk 0 with `getChunk(blobId, readToken, 0)` and give it to
 * {@link openHostedKemKey}. A version 1 invitation has none (RangeError).
 *
 * @example
 * ```ts
 * const { blobId, readToken } = hostedKemKeyLocation(invitation);
 * ```
 */
export function hostedKemKeyLocation(invitation: Invitation): HostedKemKeyLocation {
  const { blobId, readToken, fileKey } = hostDerivations(requireCommitment(invitation), invitation.prekey);
  wipe(fileKey);
  return {
    blobId,
    readToken,
    chunkCount: HOSTED_KEM_KEY_CHUNK_COUNT,
    sealedSize: HOSTED_KEM_KEY_SEALED_SIZE,
  };
}

/**
 * The inviter's side: the blob that hosts a version 2 invitation's KEM key, for `createBlob` and
 * `putChunk` on the invitation's relay. Everything in it is a function of the pending invitation,
 * so uploading it again (after the relay expired it) re-creates the same blob (PROTOCOL.md §4.6).
 * A version 1 pending invitation has none (RangeError).
 *
 * @example
 * ```ts
 * const u = hostedKemKeyUpload(pending);
 * // createBlob { blobId: u.blobId, writeTokenHash: u.writeTokenHash, chunkCount: 1,
 * //              sealedSize: u.sealedSize, readTokenHashes: u.readTokenHashes }
 * // putChunk { blobId: u.blobId, writeToken: u.writeToken, index: 0, sealedChunk: u.sealedChunk }
 * ```
 */
export function hostedKemKeyUpload(pending: PendingInvitation): HostedKemKeyUpload {
  const publicKey = pending.kemPublicKey;
  if (publicKey === null || pending.kemSeed === null)
    throw new RangeError("a version 1 (classical) invitation has no hosted KEM key");
  const { blobId, readToken, fileKey } = hostDerivations(kemCommitment(publicKey), pending.prekey);
  const cipher = new FileCipher(fileKey);
  const sealedChunk = cipher.seal(0, true, publicKey);
  cipher.wipe();
  wipe(fileKey);
  const writeToken = hkdfSha256(
    pending.kemSeed,
    new Uint8Array(0),
    label("kemBlobWriteToken"),
    BLOB_TOKEN_LENGTH,
  );
  return {
    blobId,
    readToken,
    chunkCount: HOSTED_KEM_KEY_CHUNK_COUNT,
    sealedSize: HOSTED_KEM_KEY_SEALED_SIZE,
    writeToken,
    writeTokenHash: blobTokenHash(writeToken),
    readTokenHashes: [blobTokenHash(readToken)],
    sealedChunk,
  };
}

/**
 * Checks an encapsulation key against a version 2 invitation's commitment, fail-closed:
 * HandshakeError KEM_KEY_MISSING when there is none, KEM_KEY_MISMATCH when it is not the key the
 * invitation signed, KEM_KEY_INVALID when it is but fails the FIPS 203 §7.2 checks (only the
 * inviter can make that happen). `acceptInvitation` runs it on the key it is given.
 */
export function checkKemKey(invitation: Invitation, publicKey: Uint8Array | null | undefined): Uint8Array {
  const commitment = requireCommitment(invitation);
  if (publicKey === null || publicKey === undefined) {
    throw new HandshakeError(
      "KEM_KEY_MISSING",
      "the inviter's post-quantum key is missing; this invitation is post-quantum and is not accepted without it",
    );
  }
  if (
    publicKey.length !== ML_KEM_PUBLIC_KEY_LENGTH ||
    !equalConstantTime(kemCommitment(publicKey), commitment)
  ) {
    throw new HandshakeError(
      "KEM_KEY_MISMATCH",
      "the post-quantum key served for this invitation is not the one the inviter signed (swapped or altered on the way); refusing to continue",
    );
  }
  const problem = mlKemPublicKeyProblem(publicKey);
  if (problem) {
    throw new HandshakeError(
      "KEM_KEY_INVALID",
      `the inviter's post-quantum key matches its invitation but is not a valid ML-KEM-768 key: ${problem}`,
    );
  }
  return publicKey;
}

/**
 * The accepter's side: opens the hosted key's sealed chunk fetched from the relay and checks it
 * against the invitation's commitment. Pass null or undefined when the relay had no such blob
 * (UNKNOWN_BLOB) or did not answer: HandshakeError KEM_KEY_MISSING. A chunk that does not open
 * under the invitation's derived key, or opens to another key, is KEM_KEY_MISMATCH. Returns the
 * encapsulation key for `acceptInvitation`'s `kemPublicKey`.
 *
 * @example
 * ```ts
 * const kemPublicKey = openHostedKemKey(invitation, chunk ?? null); // throws unless it matches
 * acceptInvitation(bob, invitation, { mailbox, relayUrl, plaintext, kemPublicKey });
 * ```
 */
export function openHostedKemKey(
  invitation: Invitation,
  sealedChunk: Uint8Array | null | undefined,
): Uint8Array {
  const commitment = requireCommitment(invitation);
  if (sealedChunk === null || sealedChunk === undefined) return checkKemKey(invitation, null);
  const { blobId, readToken, fileKey } = hostDerivations(commitment, invitation.prekey);
  wipe(blobId, readToken);
  const cipher = new FileCipher(fileKey);
  let publicKey: Uint8Array;
  try {
    publicKey = cipher.open(0, true, sealedChunk);
  } catch (e) {
    if (!(e instanceof CryptoError)) throw e;
    throw new HandshakeError(
      "KEM_KEY_MISMATCH",
      "the post-quantum key served for this invitation does not open under the invitation's key (swapped or altered on the way); refusing to continue",
    );
  } finally {
    cipher.wipe();
    wipe(fileKey);
  }
  return checkKemKey(invitation, publicKey);
}
