/**
 * Every error the package throws on bad input is a {@link ParleyError} with a stable `code`, so
 * callers (the relay, the client) can branch on it and never see a bare `Error` from untrusted
 * bytes.
 *
 * @example
 * ```ts
 * try { decodeFrame(bytes); } catch (e) { if (e instanceof DecodeError) reply(e.code, e.message); }
 * ```
 */
export class ParleyError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * Malformed bytes: wrong length, unknown type or version, bad field value, trailing data (BAD_FRAME);
 * another version (UNSUPPORTED_VERSION); a ciphertext above the configured limit (TOO_LARGE).
 */
export class DecodeError extends ParleyError {
  declare readonly code: "BAD_FRAME" | "UNSUPPORTED_VERSION" | "TOO_LARGE";
  constructor(message: string, code: "BAD_FRAME" | "UNSUPPORTED_VERSION" | "TOO_LARGE" = "BAD_FRAME") {
    super(code, message);
  }
}

/** Why an invitation code was refused. Each names one precise failure. */
export type InvitationErrorCode =
  | "BAD_PREFIX"
  | "UNSUPPORTED_VERSION"
  | "BAD_CHARACTER"
  | "TRUNCATED"
  | "CHECKSUM"
  | "MALFORMED"
  | "BAD_SIGNATURE"
  | "EXPIRED";

export class InvitationError extends ParleyError {
  declare readonly code: InvitationErrorCode;
  constructor(code: InvitationErrorCode, message: string) {
    super(code, message);
  }
}

export type CryptoErrorCode = "LOW_ORDER" | "AUTH" | "BAD_LENGTH" | "BAD_KEY";

/** A primitive refused its input: low-order point, failed tag, wrong key or nonce length. */
export class CryptoError extends ParleyError {
  declare readonly code: CryptoErrorCode;
  constructor(code: CryptoErrorCode, message: string) {
    super(code, message);
  }
}

export type HandshakeErrorCode =
  | "UNKNOWN_INVITATION"
  | "CONSUMED"
  | "EXPIRED"
  | "BAD_SIGNATURE"
  | "AUTH"
  | "LOW_ORDER"
  /** A post-quantum invitation's KEM key was not served (the relay withheld it, or it expired). */
  | "KEM_KEY_MISSING"
  /** The KEM key served is not the one the invitation's commitment names (swapped or altered). */
  | "KEM_KEY_MISMATCH"
  /** The KEM key matches the commitment but is not a valid ML-KEM-768 key (FIPS 203 §7.2). */
  | "KEM_KEY_INVALID"
  /** A classical (version 1) Accept answered a post-quantum invitation. */
  | "DOWNGRADE"
  /** A post-quantum (version 2) Accept answered a classical invitation. */
  | "VERSION_MISMATCH";

/** The first message of a session could not be accepted. */
export class HandshakeError extends ParleyError {
  declare readonly code: HandshakeErrorCode;
  constructor(code: HandshakeErrorCode, message: string) {
    super(code, message);
  }
}

export type RatchetErrorCode = "AUTH" | "DUPLICATE" | "TOO_FAR_AHEAD" | "LOW_ORDER" | "EXHAUSTED";

/** A ratchet message was refused. The session state is exactly as it was before the call. */
export class RatchetError extends ParleyError {
  declare readonly code: RatchetErrorCode;
  constructor(code: RatchetErrorCode, message: string) {
    super(code, message);
  }
}

export type PayloadErrorCode = "TOO_LARGE" | "BAD_PADDING" | "UNSUPPORTED_TYPE";

/** A plaintext payload could not be encoded or decoded. */
export class PayloadError extends ParleyError {
  declare readonly code: PayloadErrorCode | "BAD_FRAME" | "UNSUPPORTED_VERSION";
  constructor(code: PayloadErrorCode | "BAD_FRAME" | "UNSUPPORTED_VERSION", message: string) {
    super(code, message);
  }
}

export type GroupErrorCode = "BAD_SIGNATURE";

/** A group entry or group message whose author's signature does not verify. */
export class GroupError extends ParleyError {
  declare readonly code: GroupErrorCode;
  constructor(code: GroupErrorCode, message: string) {
    super(code, message);
  }
}
