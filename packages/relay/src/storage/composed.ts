// A storage kept in two parts, its mailboxes and messages and its blobs (sqlite-messages.ts and
// sqlite-blobs.ts, redis-messages.ts and redis-blobs.ts): the Storage methods of each half go to
// that part. The subclass holds the files or connections both parts share, and the rest of Storage.
import type {
  BlobDoneResult,
  BlobSpec,
  BlobState,
  BlobStorage,
  CreateBlobResult,
  CreateResult,
  DepositRequest,
  DepositResult,
  MailboxLimits,
  MessageStorage,
  PutChunkResult,
  StoredMessage,
} from "./types.js";

export abstract class ComposedStorage implements MessageStorage, BlobStorage {
  protected abstract readonly messages: MessageStorage;
  protected abstract readonly blobs: BlobStorage;

  createMailbox(address: Uint8Array, ownerKey: Uint8Array): Promise<CreateResult> {
    return this.messages.createMailbox(address, ownerKey);
  }
  mailboxOwner(address: Uint8Array): Promise<Uint8Array | null> {
    return this.messages.mailboxOwner(address);
  }
  setDepositToken(address: Uint8Array, tokenHash: Uint8Array): Promise<boolean> {
    return this.messages.setDepositToken(address, tokenHash);
  }
  deleteMailbox(address: Uint8Array): Promise<boolean> {
    return this.messages.deleteMailbox(address);
  }
  deposit(r: DepositRequest, limits: MailboxLimits): Promise<DepositResult> {
    return this.messages.deposit(r, limits);
  }
  pending(address: Uint8Array, now: number, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    return this.messages.pending(address, now, limit, afterSeq);
  }
  ack(address: Uint8Array, id: Uint8Array): Promise<boolean> {
    return this.messages.ack(address, id);
  }
  sweep(now: number): Promise<number> {
    return this.messages.sweep(now);
  }

  createBlob(spec: BlobSpec, maxBlobBytes: number): Promise<CreateBlobResult> {
    return this.blobs.createBlob(spec, maxBlobBytes);
  }
  blob(id: Uint8Array, now: number): Promise<BlobState | null> {
    return this.blobs.blob(id, now);
  }
  putChunk(id: Uint8Array, index: number, sealedChunk: Uint8Array, now: number): Promise<PutChunkResult> {
    return this.blobs.putChunk(id, index, sealedChunk, now);
  }
  getChunk(id: Uint8Array, index: number, now: number): Promise<Uint8Array | null> {
    return this.blobs.getChunk(id, index, now);
  }
  blobDone(id: Uint8Array, readTokenHash: Uint8Array, now: number): Promise<BlobDoneResult> {
    return this.blobs.blobDone(id, readTokenHash, now);
  }
  deleteBlob(id: Uint8Array): Promise<boolean> {
    return this.blobs.deleteBlob(id);
  }
  sweepBlobs(now: number): Promise<number> {
    return this.blobs.sweepBlobs(now);
  }
}
