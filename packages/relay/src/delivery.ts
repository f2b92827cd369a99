// The relay's hot path: deposit → deliver → ack. A deposit is stored, answered, and pushed at once to
// every connection subscribed to its mailbox; an ack deletes the message and settles its delivery on
// every connection that had it in flight.
//
// Each connection has a window (--max-outstanding-bytes / 2) of deliveries in flight, shared by its
// subscriptions: a message that does not fit waits in storage, its mailbox on the connection's
// backlog, until an ack makes room. Messages the relay did not push as they arrived (stored before
// the subscription, behind a full window, through another relay) are read from storage by delivery
// rounds (`pump`), from a cursor per mailbox, so that a round never reads the same message twice.

import { randomBytes } from "node:crypto";
import { depositTokenHash, type Frame, fromHex, toHex } from "@parley/protocol";
import type { Connection } from "./connection.js";
import type { Connections } from "./connections.js";
import type { RelayContext } from "./context.js";
import type { Storage, StoredMessage } from "./storage/types.js";

/** Messages fetched from storage per delivery round. */
const DELIVERY_BATCH = 100;

type DepositFrame = Extract<Frame, { type: "deposit" | "tokenDeposit" }>;
type AckFrame = Extract<Frame, { type: "ack" }>;

export class Delivery {
  /** Mailbox (hex) -> connections subscribed to it. */
  private readonly subscribers = new Map<string, Set<Connection>>();
  /** Message id (hex) -> connections it is in flight on, so an ack settles it in O(1). */
  private readonly inflight = new Map<string, Set<Connection>>();

  constructor(
    private readonly ctx: RelayContext,
    private readonly connections: Connections,
  ) {}

  // ---- deposit → deliver → ack --------------------------------------------------------------

  async deposit(conn: Connection, f: DepositFrame, arrived: number): Promise<void> {
    const { config, metrics } = this.ctx;
    const receivedAt = this.ctx.now();
    const key = toHex(f.address);
    let result: Awaited<ReturnType<Storage["deposit"]>>;
    try {
      result = await this.ctx.storage.deposit(
        {
          address: f.address,
          clientMessageId: f.clientMessageId,
          ciphertext: f.ciphertext,
          receivedAt,
          expiresAt: receivedAt + config.ttlSeconds * 1000,
          id: randomBytes(16),
          tokenHash: f.type === "tokenDeposit" ? depositTokenHash(f.token) : null,
        },
        { maxMessages: config.mailboxMaxMessages, maxBytes: config.mailboxMaxBytes },
      );
    } catch (e) {
      // It may have been stored all the same (a reply lost or too late): this relay hears no
      // notification of its own deposits, so its subscribers read the mailbox.
      this.pumpSubscribers(key, f.address);
      throw e;
    }
    switch (result.status) {
      case "unknown-mailbox":
        return this.connections.error(conn, f.requestId, "UNKNOWN_MAILBOX", "no such mailbox");
      case "quota":
        return this.connections.error(conn, f.requestId, "QUOTA", "the mailbox is full; try again later");
      case "token":
        return this.connections.error(
          conn,
          f.requestId,
          "AUTH",
          f.type === "deposit"
            ? "this mailbox takes deposits only with its deposit token"
            : "this is not the mailbox's deposit token",
        );
      case "full":
        return this.connections.error(
          conn,
          f.requestId,
          "QUOTA",
          "the relay's storage is full; try again later",
        );
      case "id-reused":
        return this.connections.error(
          conn,
          f.requestId,
          "BAD_FRAME",
          "this client message id was already used in this mailbox for another ciphertext; use a fresh random id",
        );
      case "duplicate":
        metrics.duplicateDeposits.inc();
        this.connections.send(conn, { type: "ok", requestId: f.requestId });
        // A retry of a deposit whose first attempt failed here but was stored: push it now.
        this.pumpSubscribers(key, f.address);
        return;
      case "stored": {
        metrics.deposits.inc();
        this.connections.send(conn, { type: "ok", requestId: f.requestId });
        metrics.depositLatency.observe((performance.now() - arrived) / 1000);
        for (const sub of this.subscribers.get(key) ?? []) this.push(sub, key, result.message);
      }
    }
  }

  /** Sends one message to a subscriber unless it is already in flight there or its window is full. */
  private push(conn: Connection, key: string, m: StoredMessage): boolean {
    const idKey = toHex(m.id);
    if (conn.inflight.has(idKey)) return true;
    if (conn.inflightBytes >= this.ctx.config.maxOutstandingBytes / 2) {
      conn.backlog.add(key);
      return false;
    }
    conn.inflight.set(idKey, { key, size: m.ciphertext.length, expiresAt: m.expiresAt, ackExempted: false });
    conn.inflightBytes += m.ciphertext.length;
    let holders = this.inflight.get(idKey);
    if (!holders) {
      holders = new Set();
      this.inflight.set(idKey, holders);
    }
    holders.add(conn);
    this.ctx.metrics.deliveries.inc();
    this.ctx.metrics.deliveryLatency.observe(Math.max(0, this.ctx.now() - m.receivedAt) / 1000);
    this.connections.send(conn, {
      type: "deliver",
      requestId: 0,
      address: m.address,
      messageId: m.id,
      receivedAt: m.receivedAt,
      ciphertext: m.ciphertext,
    });
    return true;
  }

  async ack(conn: Connection, f: AckFrame): Promise<void> {
    const key = toHex(f.address);
    if (!conn.subscriptions.has(key)) {
      return this.connections.error(
        conn,
        f.requestId,
        "AUTH",
        "subscribe with an ownership proof before acking",
      );
    }
    const found = await this.ctx.storage.ack(f.address, f.messageId);
    // Acked now, or already gone (acked elsewhere, expired): either way it is no longer in flight.
    this.settle(toHex(f.messageId), key);
    if (!found) {
      this.connections.error(conn, f.requestId, "UNKNOWN_MESSAGE", "no such message (acked or expired)");
      return;
    }
    this.ctx.metrics.acks.inc();
    this.connections.send(conn, { type: "ok", requestId: f.requestId });
  }

  /**
   * An ack settles an in-flight delivery of mailbox `key` on every connection that had it, and
   * resumes the deliveries that waited behind each of those windows.
   */
  private settle(idKey: string, key: string): void {
    for (const c of [...(this.inflight.get(idKey) ?? [])]) {
      if (c.inflight.get(idKey)?.key !== key) continue;
      this.drop(c, idKey);
      this.resume(c);
    }
  }

  /** Forgets one in-flight delivery on one connection (acked, expired, deleted or unsubscribed). */
  private drop(conn: Connection, idKey: string): void {
    const entry = conn.inflight.get(idKey);
    if (!entry) return;
    conn.inflight.delete(idKey);
    conn.inflightBytes -= entry.size;
    const holders = this.inflight.get(idKey);
    holders?.delete(conn);
    if (holders?.size === 0) this.inflight.delete(idKey);
  }

  /**
   * The window is shared by all of a connection's subscriptions: once it has room again, every
   * mailbox that was left with a backlog gets a delivery round.
   */
  private resume(conn: Connection): void {
    if (conn.inflightBytes >= this.ctx.config.maxOutstandingBytes / 2) return;
    for (const key of [...conn.backlog]) {
      conn.backlog.delete(key);
      this.ctx.track(this.pump(conn, key, fromHex(key)));
    }
  }

  /** Expired messages are gone from storage: forget their deliveries and resume blocked windows. */
  settleExpired(now: number): void {
    for (const conn of this.connections.all) {
      let freed = false;
      for (const [idKey, entry] of conn.inflight) {
        if (entry.expiresAt > now) continue;
        this.drop(conn, idKey);
        freed = true;
      }
      if (freed) this.resume(conn);
    }
  }

  // ---- subscriptions ------------------------------------------------------------------------

  /** Subscribes a connection whose ownership proof was checked, answers, and delivers what waits. */
  subscribe(conn: Connection, requestId: number, address: Uint8Array): void {
    if (conn.cut || conn.ws.readyState !== conn.ws.OPEN) return;
    const key = toHex(address);
    conn.subscriptions.add(key);
    let set = this.subscribers.get(key);
    if (!set) {
      set = new Set();
      this.subscribers.set(key, set);
    }
    set.add(conn);
    this.connections.send(conn, { type: "ok", requestId });
    // In the background: the request is answered, and a delivery round that fails now must not
    // answer it a second time (the messages stay stored; a later round delivers them).
    this.ctx.track(this.pump(conn, key, address));
  }

  /** Ends a subscription; its unacknowledged deliveries are forgotten, so a new one sends them again. */
  unsubscribe(conn: Connection, key: string): void {
    conn.subscriptions.delete(key);
    conn.cursors.delete(key);
    conn.backlog.delete(key);
    for (const [idKey, entry] of conn.inflight) if (entry.key === key) this.drop(conn, idKey);
    const set = this.subscribers.get(key);
    set?.delete(conn);
    if (set && set.size === 0) this.subscribers.delete(key);
  }

  /** A connection closed: every subscription of it ends. */
  closed(conn: Connection): void {
    for (const key of conn.subscriptions) this.unsubscribe(conn, key);
  }

  /** Mailbox `key` was deleted: every subscription to it ends. */
  mailboxDeleted(key: string): void {
    for (const c of this.subscribers.get(key) ?? []) this.unsubscribe(c, key);
  }

  // ---- delivery rounds ----------------------------------------------------------------------

  /**
   * A message was stored through another relay: each of our subscribers to its mailbox that has not
   * examined it yet gets a delivery round.
   */
  depositedElsewhere(address: Uint8Array, seq: number): void {
    if (this.ctx.draining) return;
    const key = toHex(address);
    for (const conn of this.subscribers.get(key) ?? []) {
      if ((conn.cursors.get(key) ?? 0) >= seq) continue;
      this.ctx.track(this.pump(conn, key, address));
    }
  }

  /** Every subscriber of mailbox `key` on this relay gets a delivery round. */
  private pumpSubscribers(key: string, address: Uint8Array): void {
    if (this.ctx.draining) return;
    for (const conn of this.subscribers.get(key) ?? []) this.ctx.track(this.pump(conn, key, address));
  }

  /**
   * Notifications may have been missed, or the storage's arrival counter went back (Redis lost its
   * last writes, or was restored from an older copy), so that new messages may have a seq at or
   * below a cursor: every cursor is forgotten and every subscription gets a delivery round from the
   * start of its mailbox. Messages in flight are not sent again (the round skips them).
   */
  resync(): void {
    if (this.ctx.draining) return;
    for (const conn of this.connections.all) {
      conn.cursors.clear();
      conn.cursorEpoch++;
    }
    for (const [key, conns] of this.subscribers) {
      const address = fromHex(key);
      for (const conn of conns) this.ctx.track(this.pump(conn, key, address));
    }
  }

  /** Delivers what waits in a mailbox, in rounds, until it is empty or the window is full. */
  private async pump(conn: Connection, key: string, address: Uint8Array): Promise<void> {
    if (conn.pumping.has(key)) {
      conn.pumpAgain.add(key);
      return;
    }
    conn.pumping.add(key);
    const { config } = this.ctx;
    try {
      for (;;) {
        conn.pumpAgain.delete(key);
        if (!conn.subscriptions.has(key) || conn.ws.readyState !== conn.ws.OPEN) return;
        // Fetch no more than the window can take: a round never reads what it cannot send.
        const free = config.maxOutstandingBytes / 2 - conn.inflightBytes;
        if (free <= 0) {
          conn.backlog.add(key); // an ack resumes
          return;
        }
        const limit = Math.min(DELIVERY_BATCH, 1 + Math.floor(free / config.maxMessageBytes));
        const epoch = conn.cursorEpoch;
        const batch = await this.ctx.storage.pending(
          address,
          this.ctx.now(),
          limit,
          conn.cursors.get(key) ?? 0,
        );
        // Cursors cleared meanwhile (a resync): this batch still goes out, but the next round starts
        // from the beginning of the mailbox (the resync asked for one).
        const advance = epoch === conn.cursorEpoch;
        for (const m of batch) {
          if (!conn.inflight.has(toHex(m.id)) && !this.push(conn, key, m)) return; // window full
          if (advance) conn.cursors.set(key, m.seq);
        }
        if (batch.length < limit && !conn.pumpAgain.has(key)) return;
      }
    } finally {
      conn.pumping.delete(key);
    }
  }
}
