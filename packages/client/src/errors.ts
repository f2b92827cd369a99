// Every failure the client reports to a user is a ClientError with a stable code; the CLI maps
// each code to its own exit status (README "Exit statuses") and prints one line on stderr.

/** Exit status of each failure, as documented in the README. */
export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  NOT_INITIALIZED: 3,
  ALREADY_INITIALIZED: 4,
  UNKNOWN_CONTACT: 5,
  BAD_INVITATION: 6,
  EXPIRED_INVITATION: 7,
  WRONG_PASSPHRASE: 8,
  NO_PASSPHRASE: 9,
  LOCKED: 10,
  KEY_CHANGED: 11,
  RELAY_REFUSED: 12,
  SAFETY_MISMATCH: 13,
  NOT_ALLOWED: 14,
  FILE_FAILED: 15,
  UNKNOWN_FILE: 16,
  UNREACHABLE: 75,
} as const;

export type ClientErrorCode = Exclude<keyof typeof EXIT, "OK">;

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ClientError";
    this.code = code;
  }

  get exitStatus(): number {
    return EXIT[this.code];
  }
}
