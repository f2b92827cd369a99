/**
 * @parley/protocol: Parley's security core. PROTOCOL.md beside this package is the specification.
 * @module
 */
export { fromHex, toHex } from "./_bytes.js";
export { base32Decode, base32Encode } from "./base32.js";
export * from "./blob.js";
export {
  dh,
  hkdfSha256,
  hmacSha256,
  type KeyPair,
  LABELS,
  open,
  type RandomSource,
  seal,
  systemRandom,
  verify as ed25519Verify,
  x25519IsLowOrder,
  x25519KeyPair,
  xopen,
  xseal,
} from "./crypto.js";
export {
  ACCEPT_VERSION_PQ,
  type AcceptEnvelope,
  type AcceptVersion,
  decodeEnvelope,
  type Envelope,
  HEADER_FLAG_KEM_MIXED,
  HEADER_LENGTH,
  LEGACY_HEADER_LENGTH,
  MAX_ENVELOPE_LENGTH,
  MAX_SEALED_IDENTITY_LENGTH,
  MAX_V1_SEALED_IDENTITY_LENGTH,
  MESSAGE_NONCE_LENGTH,
  type MessageEnvelope,
  type MessageHeader,
  PQ_HEADER_LENGTH,
} from "./envelope.js";
export {
  CryptoError,
  DecodeError,
  GroupError,
  type GroupErrorCode,
  HandshakeError,
  type HandshakeErrorCode,
  InvitationError,
  type InvitationErrorCode,
  ParleyError,
  PayloadError,
  RatchetError,
} from "./errors.js";
export * from "./file.js";
export * from "./file-payload.js";
export * from "./frames.js";
export * from "./group.js";
export {
  type AcceptedContact,
  type AcceptOptions,
  type AcceptResult,
  acceptInvitation,
  checkInvitationKeys,
  InvitationBook,
  sessionAd,
} from "./handshake.js";
export {
  checkKemKey,
  HOSTED_KEM_KEY_CHUNK_COUNT,
  HOSTED_KEM_KEY_SEALED_SIZE,
  type HostedKemKeyLocation,
  type HostedKemKeyUpload,
  hostedKemKeyLocation,
  hostedKemKeyUpload,
  KEM_COMMITMENT_LENGTH,
  kemCommitment,
  openHostedKemKey,
} from "./hosted-key.js";
export {
  decodePublicIdentity,
  encodePublicIdentity,
  fingerprint,
  Identity,
  type PublicIdentity,
  samePublicIdentity,
} from "./identity.js";
export {
  type CreateInvitationOptions,
  createInvitation,
  DEFAULT_INVITATION_TTL_SECONDS,
  decodeInvitation,
  encodeInvitation,
  INVITATION_PREFIX,
  INVITATION_PREFIX_V2,
  type Invitation,
  type InvitationVersion,
  invitationId,
  PendingInvitation,
  relayUrlProblem,
} from "./invitation.js";
export {
  ML_KEM_CIPHERTEXT_LENGTH,
  ML_KEM_PUBLIC_KEY_LENGTH,
  ML_KEM_SEED_LENGTH,
  ML_KEM_SHARED_SECRET_LENGTH,
  type MlKemKeyPair,
  mlKemDecapsulate,
  mlKemEncapsulate,
  mlKemKeyPair,
  mlKemPublicKey,
  mlKemPublicKeyProblem,
} from "./kem.js";
export {
  CHALLENGE_LENGTH,
  DEPOSIT_TOKEN_LENGTH,
  depositTokenHash,
  MAILBOX_ADDRESS_LENGTH,
  MailboxAction,
  MailboxKey,
  mailboxAddress,
  mailboxProofMessage,
  verifyMailboxProof,
} from "./mailbox.js";
export * from "./payload.js";
export { MAX_SKIP, MAX_SKIP_NEW_KEY, MAX_STORED_SKIPPED, Session, type SessionOptions } from "./ratchet.js";
export { MAX_RELAY_URL_LENGTH, type RelayUrlFault, relayUrlFault } from "./relay-url.js";
export { SAFETY_COMPACT_PREFIX, type SafetyNumber, safetyNumber, verifySafetyNumber } from "./safety.js";
