// Every frame a client sends: paced (--rate-limit), decoded strictly, and handed to what serves it:
// deposits and acks to delivery.ts, file frames to blobs.ts, mailbox management with its ownership
// proof (proofs.ts) here.
import {
  DecodeError,
  decodeFrame,
  FRAME_VERSION,
  type Frame,
  isClientFrame,
  MailboxAction,
  mailboxAddress,
  toHex,
} from "@parley/protocol";
import { type BlobService, GET_CHUNK_TYPE, PUT_CHUNK_TYPE } from "./blobs.js";
import type { Connection } from "./connection.js";
import type { Connections } from "./connections.js";
import type { RelayContext } from "./context.js";
import type { Delivery } from "./delivery.js";
import type { Proofs } from "./proofs.js";
import { StorageUnavailableError } from "./storage/types.js";

/** Frame type byte of an ack (PROTOCOL.md §8.2), and where its mailbox address and message id sit. */
const ACK_TYPE = 0x06;
const ACK_ADDRESS_OFFSET = 6;
const ACK_ID_OFFSET = ACK_ADDRESS_OFFSET + 32;

export interface FramesOptions {
  readonly connections: Connections;
  readonly delivery: Delivery;
  readonly proofs: Proofs;
  readonly blobs: BlobService<Connection>;
}

export class Frames {
  private readonly connections: Connections;
  private readonly delivery: Delivery;
  private readonly proofs: Proofs;
  private readonly blobs: BlobService<Connection>;

  constructor(
    private readonly ctx: RelayContext,
    o: FramesOptions,
  ) {
    this.connections = o.connections;
    this.delivery = o.delivery;
    this.proofs = o.proofs;
    this.blobs = o.blobs;
  }

  /** One WebSocket message from a connection. */
  handle(conn: Connection, data: Buffer, isBinary: boolean): void {
    if (conn.cut) return;
    const arrived = performance.now();
    conn.lastFrame = arrived;
    const requestId = data.length >= 6 ? data.readUInt32BE(2) : 0;
    if (this.ctx.draining) {
      this.connections.error(conn, requestId, "SHUTTING_DOWN", "the relay is shutting down; reconnect later");
      return;
    }
    // An ack of a delivery in flight on this connection, under the mailbox it was delivered from,
    // is not rate-limited, once: the relay chose to send that message, and an owner draining a
    // backlog must be able to acknowledge it all. A repeat, or an ack naming another mailbox, pays.
    const acked =
      data.length === ACK_ID_OFFSET + 16 && data[1] === ACK_TYPE
        ? conn.inflight.get(data.toString("hex", ACK_ID_OFFSET, ACK_ID_OFFSET + 16))
        : undefined;
    const exempt =
      acked !== undefined &&
      !acked.ackExempted &&
      acked.key === data.toString("hex", ACK_ADDRESS_OFFSET, ACK_ID_OFFSET);
    if (exempt) acked.ackExempted = true;
    // File chunks are paced in bytes, not frames (blobs.ts): a refused one takes its token there.
    const chunk =
      data.length >= 2 &&
      data[0] === FRAME_VERSION &&
      (data[1] === PUT_CHUNK_TYPE || data[1] === GET_CHUNK_TYPE);
    if (!exempt && !chunk && !conn.takeToken()) {
      // Throttled, not a violation: the frame is refused and the client may retry later.
      this.connections.error(conn, requestId, "RATE_LIMITED", "too many frames; slow down");
      return;
    }
    if (!isBinary) {
      this.connections.violation(conn, requestId, "BAD_FRAME", "frames are binary");
      return;
    }
    let frame: Frame;
    try {
      frame = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.length), {
        maxCiphertext: this.ctx.config.maxMessageBytes,
      });
    } catch (e) {
      if (e instanceof DecodeError) {
        this.connections.violation(conn, requestId, e.code, e.message);
        return;
      }
      throw e;
    }
    if (!isClientFrame(frame)) {
      this.connections.violation(conn, requestId, "BAD_FRAME", `${frame.type} is a relay frame`);
      return;
    }
    if (!conn.helloDone && frame.type !== "hello") {
      this.connections.violation(conn, frame.requestId, "NO_HELLO", "send hello first");
      return;
    }
    const work = this.dispatch(conn, frame, arrived).catch((e: unknown) => {
      if (e instanceof StorageUnavailableError) {
        this.ctx.storageTrouble(e);
        this.connections.error(
          conn,
          frame.requestId,
          "INTERNAL",
          "the relay's storage is unavailable; retry later",
        );
        return;
      }
      this.ctx.log.error({ conn: conn.serial, err: e }, "request failed");
      this.connections.error(conn, frame.requestId, "INTERNAL", "the relay could not complete this request");
    });
    this.ctx.hold(work);
  }

  private async dispatch(conn: Connection, f: Frame, arrived: number): Promise<void> {
    const { config, storage } = this.ctx;
    const ok = () => this.connections.send(conn, { type: "ok", requestId: f.requestId });
    switch (f.type) {
      case "hello":
        if (!conn.helloDone) this.connections.armDeadline(conn, config.idleTimeoutSeconds * 1000);
        conn.helloDone = true;
        return this.connections.send(conn, {
          type: "welcome",
          requestId: f.requestId,
          version: FRAME_VERSION,
          challenge: conn.challenge,
          maxCiphertext: config.maxMessageBytes,
          retentionSeconds: config.ttlSeconds,
        });
      case "deposit":
      case "tokenDeposit":
        return this.delivery.deposit(conn, f, arrived);
      case "ack":
        return this.delivery.ack(conn, f);
      case "subscribe":
        if (!(await this.proofs.ownerProves(conn, f, MailboxAction.subscribe))) return;
        return this.delivery.subscribe(conn, f.requestId, f.address);
      case "unsubscribe":
        this.delivery.unsubscribe(conn, toHex(f.address));
        return ok();
      case "createBlob":
      case "putChunk":
      case "blobStatus":
      case "getChunk":
      case "blobDone":
      case "deleteBlob":
        return this.blobs.handle(conn, f);
      case "createMailbox": {
        const address = mailboxAddress(f.ownerKey);
        const proof = await this.proofs.check(conn, f.ownerKey, MailboxAction.create, address, f.signature);
        if (proof !== "valid") return this.proofs.refuse(conn, f.requestId, proof);
        const result = await storage.createMailbox(address, f.ownerKey);
        if (result === "conflict")
          return this.connections.error(conn, f.requestId, "MAILBOX_EXISTS", "mailbox exists");
        if (result === "full") {
          return this.connections.error(
            conn,
            f.requestId,
            "QUOTA",
            "the relay takes no new mailboxes for now; try again later",
          );
        }
        return ok();
      }
      case "setDepositToken": {
        if (!(await this.proofs.ownerProves(conn, f, MailboxAction.setDepositToken, f.tokenHash))) return;
        if (!(await storage.setDepositToken(f.address, f.tokenHash)))
          return this.connections.error(conn, f.requestId, "UNKNOWN_MAILBOX", "no such mailbox");
        return ok();
      }
      case "deleteMailbox": {
        if (!(await this.proofs.ownerProves(conn, f, MailboxAction.delete))) return;
        await storage.deleteMailbox(f.address);
        this.delivery.mailboxDeleted(toHex(f.address));
        return ok();
      }
      default:
        return this.connections.violation(conn, f.requestId, "BAD_FRAME", "unexpected frame");
    }
  }
}
