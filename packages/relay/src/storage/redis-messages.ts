// The Redis storage's mailboxes and messages (redis.ts describes the keys): the hot path (deposit,
// pending, ack) and the sweep, each change one script (redis-scripts.ts).
import { toHex } from "@parley/protocol";
import type { Logger } from "../log.js";
import type { RedisClient } from "./redis-client.js";
import { HEADER } from "./redis-scripts.js";
import {
  type CreateResult,
  type DepositRequest,
  type DepositResult,
  depositDigest,
  type MailboxLimits,
  type StorageCapacity,
  type StoredMessage,
} from "./types.js";

/** Mailboxes visited per sweep round, and expired messages deleted per mailbox per script call. */
const SWEEP_MAILBOXES = 100;
const SWEEP_BATCH = 500;

/** The keys of one mailbox (A is its address in hex). */
interface MailboxKeys {
  readonly hex: string;
  readonly mailbox: string;
  readonly messages: string;
  readonly queue: string;
  readonly expiry: string;
  readonly seen: string;
  readonly digests: string;
}

/** The keys (and the channel) shared by every mailbox. */
export interface GlobalKeys {
  readonly seq: string;
  readonly stats: string;
  readonly due: string;
  readonly channel: string;
}

export function globalKeys(prefix: string): GlobalKeys {
  return { seq: `${prefix}seq`, stats: `${prefix}stats`, due: `${prefix}due`, channel: `${prefix}deposits` };
}

export interface RedisMessagesOptions {
  readonly client: RedisClient;
  /** Every key starts with this. */
  readonly prefix: string;
  readonly global: GlobalKeys;
  readonly capacity: StorageCapacity;
  /** This relay's id, published with each of its deposits (see RedisStorage.node). */
  readonly node: string;
  readonly log: Logger | undefined;
}

export class RedisMessages {
  private readonly client: RedisClient;
  private readonly global: GlobalKeys;

  constructor(private readonly o: RedisMessagesOptions) {
    this.client = o.client;
    this.global = o.global;
  }

  private keys(address: Uint8Array | string): MailboxKeys {
    const hex = typeof address === "string" ? address : toHex(address);
    const p = this.o.prefix;
    return {
      hex,
      mailbox: `${p}mailbox:${hex}`,
      messages: `${p}messages:${hex}`,
      queue: `${p}queue:${hex}`,
      expiry: `${p}expiry:${hex}`,
      seen: `${p}seen:${hex}`,
      digests: `${p}digests:${hex}`,
    };
  }

  async createMailbox(address: Uint8Array, ownerKey: Uint8Array): Promise<CreateResult> {
    const k = this.keys(address);
    const result = await this.client.script(
      "parleyCreate",
      [k.mailbox, this.global.stats],
      [ownerKey, this.o.capacity.maxMailboxes, this.o.capacity.maxBytes],
    );
    return result as CreateResult;
  }

  async mailboxOwner(address: Uint8Array): Promise<Uint8Array | null> {
    const owner = await this.client.run("HGET", () =>
      this.client.redis.hgetBuffer(this.keys(address).mailbox, "owner"),
    );
    return owner ? new Uint8Array(owner) : null;
  }

  async setDepositToken(address: Uint8Array, tokenHash: Uint8Array): Promise<boolean> {
    return (await this.client.script("parleySetToken", [this.keys(address).mailbox], [tokenHash])) === 1;
  }

  async deleteMailbox(address: Uint8Array): Promise<boolean> {
    const k = this.keys(address);
    const g = this.global;
    const deleted = await this.client.script(
      "parleyDeleteMailbox",
      [k.mailbox, k.messages, k.queue, k.expiry, k.seen, g.due, g.stats, k.digests],
      [k.hex],
    );
    return deleted === 1;
  }

  async deposit(r: DepositRequest, limits: MailboxLimits): Promise<DepositResult> {
    const k = this.keys(r.address);
    const g = this.global;
    const stored = Buffer.allocUnsafe(HEADER + r.ciphertext.length);
    stored.writeBigUInt64BE(BigInt(r.receivedAt), 0);
    stored.writeBigUInt64BE(BigInt(r.expiresAt), 8);
    stored.set(r.ciphertext, HEADER);
    const [status, seq] = (await this.client.script(
      "parleyDeposit",
      [k.mailbox, k.messages, k.queue, k.expiry, k.seen, g.due, g.seq, g.stats, k.digests],
      [
        k.hex,
        r.clientMessageId,
        r.id,
        stored,
        r.expiresAt,
        limits.maxMessages,
        limits.maxBytes,
        g.channel,
        this.o.node,
        depositDigest(r.ciphertext),
        this.o.capacity.maxBytes,
        r.tokenHash ?? "",
      ],
    )) as [string, string?];
    switch (status) {
      case "stored":
        return {
          status: "stored",
          message: {
            seq: Number(seq),
            id: r.id,
            address: r.address,
            ciphertext: r.ciphertext,
            receivedAt: r.receivedAt,
            expiresAt: r.expiresAt,
          },
        };
      case "duplicate":
      case "id-reused":
      case "full":
      case "quota":
      case "token":
      case "unknown-mailbox":
        return { status };
      default:
        throw new Error("unexpected deposit script reply");
    }
  }

  async pending(address: Uint8Array, now: number, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    if (limit <= 0) return [];
    const k = this.keys(address);
    const out: StoredMessage[] = [];
    let after = afterSeq;
    // Expired messages not yet swept are skipped; read on until `limit` live ones or the end.
    for (;;) {
      const want = limit - out.length;
      const reply = (await this.client.script(
        "parleyPendingBuffer",
        [k.queue, k.messages],
        [after, want],
      )) as (Buffer | null)[];
      for (let i = 0; i + 2 < reply.length; i += 3) {
        const [id, seq, stored] = [reply[i], reply[i + 1], reply[i + 2]];
        if (!id || !seq) throw new Error("malformed pending reply");
        after = Number(seq.toString());
        if (!stored) continue; // deleted between the two reads of the script: impossible, but harmless
        const expiresAt = Number(stored.readBigUInt64BE(8));
        if (expiresAt <= now) continue;
        out.push({
          seq: after,
          id: new Uint8Array(id),
          address: Uint8Array.from(address),
          ciphertext: stored.subarray(HEADER),
          receivedAt: Number(stored.readBigUInt64BE(0)),
          expiresAt,
        });
      }
      if (out.length >= limit || reply.length / 3 < want) return out;
    }
  }

  async ack(address: Uint8Array, id: Uint8Array): Promise<boolean> {
    const k = this.keys(address);
    const found = await this.client.script(
      "parleyAck",
      [k.mailbox, k.messages, k.queue, k.expiry, this.global.stats],
      [id],
    );
    return found === 1;
  }

  async sweep(now: number): Promise<number> {
    const g = this.global;
    let deleted = 0;
    let stuck: string | undefined;
    // Each script call either deletes what it finds or moves the mailbox past `now` in `due`, so
    // this ends; relays sweeping at the same time each delete a share, never the same message.
    for (;;) {
      const due = await this.client.run("ZRANGEBYSCORE", () =>
        this.client.redis.zrangebyscore(g.due, "-inf", now, "LIMIT", 0, SWEEP_MAILBOXES),
      );
      if (due.length === 0) return deleted;
      // A round that deleted nothing and left the same mailboxes due would repeat for ever: stop,
      // and let the next sweep try again.
      const round = due.join(" ");
      if (round === stuck) {
        this.o.log?.warn(
          { mailboxes: due.length },
          "redis sweep made no progress; the next sweep tries again",
        );
        return deleted;
      }
      const counts = await Promise.all(
        due.map((hex) => {
          const k = this.keys(hex);
          return this.client.script(
            "parleySweepMailbox",
            [k.mailbox, k.messages, k.queue, k.expiry, k.seen, g.due, g.stats, k.digests],
            [hex, now, SWEEP_BATCH],
          );
        }),
      );
      const n = counts.reduce((a: number, c) => a + Number(c), 0);
      deleted += n;
      stuck = n === 0 ? round : undefined;
    }
  }
}
