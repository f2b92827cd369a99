// What the file transfer needs of a relay (PROTOCOL.md §14.2): blobs of sealed chunks written
// with a write token and read with read tokens. RelayConnection provides it; tests may fake it.
import { ClientError } from "../errors.js";
import { RelayRequestError, RelayUnreachableError } from "../relay-connection.js";

/** A relay's answer to blobStatus. */
export interface BlobInfo {
  readonly chunkCount: number;
  /** Chunks stored, from index 0. */
  readonly written: number;
  readonly readersLeft: number;
  /** When the relay deletes the blob, ms since the epoch. */
  readonly expiresAt: number;
}

export interface NewBlob {
  readonly blobId: Uint8Array;
  readonly writeToken: Uint8Array;
  readonly chunkCount: number;
  /** Sum of the sealed chunks' lengths. */
  readonly sealedSize: number;
  /** One per recipient. */
  readonly readTokens: readonly Uint8Array[];
}

export interface BlobLink {
  createBlob(blob: NewBlob): Promise<void>;
  putChunk(blobId: Uint8Array, writeToken: Uint8Array, index: number, sealed: Uint8Array): Promise<void>;
  blobStatus(blobId: Uint8Array, token: Uint8Array): Promise<BlobInfo>;
  getChunk(blobId: Uint8Array, readToken: Uint8Array, index: number): Promise<Uint8Array>;
  blobDone(blobId: Uint8Array, readToken: Uint8Array): Promise<void>;
  deleteBlob(blobId: Uint8Array, writeToken: Uint8Array): Promise<void>;
}

/** Is `e` the relay saying it has no such blob (never made, expired, completed or deleted)? */
export const isUnknownBlob = (e: unknown): boolean =>
  e instanceof RelayRequestError && e.code === "UNKNOWN_BLOB";

/** A relay failure during a transfer as a ClientError: unreachable (75) or refused (12). */
export function transferError(relay: string, what: string, e: unknown): unknown {
  if (e instanceof ClientError && e.code === "UNREACHABLE") {
    return new ClientError("UNREACHABLE", `${what}: ${e.message}; run the same command again to resume`, {
      cause: e,
    });
  }
  if (e instanceof RelayUnreachableError) {
    return new ClientError("UNREACHABLE", `${what}: ${e.reason}; run the same command again to resume`, {
      cause: e,
    });
  }
  if (e instanceof RelayRequestError) {
    return new ClientError("RELAY_REFUSED", `${what}: relay ${relay} refused: ${e.code} (${e.message})`, {
      cause: e,
    });
  }
  return e;
}
