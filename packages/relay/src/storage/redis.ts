// Redis (or Valkey) storage, shared by several relays. Every change that touches more than one key
// is one Lua script (EVALSHA through ioredis' defineCommand), so the quota and duplicate checks hold
// across relays; each deposit is published on one channel, so every relay hears of it at once and
// pushes it to its own subscribers without polling.
//
// Keys (P is the prefix, "parley:v1:" by default; A is the mailbox address in hex):
//   P seq          string  the arrival counter: `seq` of the last stored message, all mailboxes
//   P stats        hash    mailboxes, messages, bytes: the totals, kept by the scripts
//   P due          zset    A -> the earliest expiry time in that mailbox (what the sweep visits)
//   P mailbox:A    hash    owner (the 32-byte owner key), messages, bytes (the quota counters),
//                          token (the deposit-token hash, once its owner set one)
//   P messages:A   hash    relay id (16 bytes) -> arrival (u64 BE, ms) | expiry (u64 BE, ms) | ciphertext
//   P queue:A      zset    relay id -> seq: arrival order, and the cursor of `pending`
//   P expiry:A     zset    relay id -> expiry time (ms), for the sweep
//   P seen:A       zset    client message id -> expiry time: remembered until then, even after an ack
//   P digests:A    hash    client message id -> the first 16 bytes of its ciphertext's SHA-256
//                          (absent for ids remembered by 0.1.0: any ciphertext is then a retry)
//   P aof-rewrite  string  a lease (SET NX EX), so that one relay at a time asks for an AOF rewrite
//   P blob:B       hash    write (write-token hash), count, size, written, wbytes (chunk bytes
//                          stored), expires (ms), readers (the read-token hashes, 32 bytes each),
//                          done (a byte per reader: 1 once it completed); B is the blob id in hex
//   P chunk:B:I    string  chunk I of blob B, sealed by the client; it expires with its blob (PX,
//                          the time left by the relay's clock), so that its bytes go at the blob's
//                          expiry even if no relay sweeps
//   P blobs        zset    B -> expiry time (ms), for the sweep
// `stats` also holds blobs, blobsealed (declared sizes) and blobbytes (chunk bytes stored).
// Channel P deposits: "A:<seq>:<relay node>" after every stored message; no ciphertext.
//
// `seq` can go back: a Redis that crashed with appendfsync everysec or no, or was restored from an
// older snapshot, comes back with the counter (and the data) of a moment ago. A deposit never gets
// a seq at or below one already in its mailbox's queue (the script bumps the counter past it), and a
// notification that is not above the last one heard tells the relay to read every mailbox again.
//
// Not a Stream per mailbox, though that looks the natural fit: XDEL only marks an entry deleted,
// and its bytes stay in the stream's node (and so in every RDB snapshot, AOF rewrite, DUMP and
// replica) until every other entry of that node is deleted too. HDEL removes the value itself.
//
// One Redis or Valkey primary (>= 6.2), not Cluster (`seq`, `due` and `stats` are global keys),
// and not a replicated set with failover (replication is asynchronous: a failover can lose
// acknowledged deposits).
import { randomBytes } from "node:crypto";
import { fromHex, toHex } from "@parley/protocol";
import { Redis, type RedisOptions } from "ioredis";
import type { RedisTarget } from "../config.js";
import { redisDisplay } from "../config-values.js";
import type { Logger } from "../log.js";
import {
  ACCOUNTED_BLOB_BYTES,
  ACCOUNTED_MAILBOX_BYTES,
  ACCOUNTED_MESSAGE_BYTES,
  type BlobDoneResult,
  type BlobSpec,
  type BlobState,
  type CreateBlobResult,
  type CreateResult,
  type DepositRequest,
  type DepositResult,
  defaultMaxMailboxes,
  depositDigest,
  type MailboxLimits,
  type PutChunkResult,
  type Storage,
  type StorageCapacity,
  type StorageDisclosure,
  type StorageEvents,
  type StorageStats,
  StorageUnavailableError,
  type StoredMessage,
} from "./types.js";

export const DEFAULT_PREFIX = "parley:v1:";
/** Mailboxes visited per sweep round, and expired messages deleted per mailbox per script call. */
const SWEEP_MAILBOXES = 100;
const SWEEP_BATCH = 500;
/** A notification: mailbox address (hex), seq, and the relay node that stored it. */
const NOTIFICATION = /^((?:[0-9a-f]{2}){1,64}):([1-9][0-9]{0,15}):([0-9a-f]{16})$/;
/** The oldest server with every command used here (ZADD LT). */
const MIN_VERSION = [6, 2] as const;
/** A stored value: arrival and expiry (u64 BE each), then the ciphertext. */
const HEADER = 16;

// ---- scripts ----------------------------------------------------------------------------------
// Every script is atomic: no other client's command runs between its first and last line.

/**
 * The bytes the relays count against `--max-storage` after adding `messages` messages of `bytes`
 * bytes and `mailboxes` mailboxes to the totals in KEYS[stats]: ciphertext, plus a fixed cost per
 * message and per mailbox.
 */
const ACCOUNTED = `
local function accounted(stats, mailboxes, messages, bytes)
  local t = redis.call('HMGET', stats, 'mailboxes', 'messages', 'bytes', 'blobs', 'blobsealed')
  return tonumber(t[3] or 0) + bytes
    + (tonumber(t[2] or 0) + messages) * ${ACCOUNTED_MESSAGE_BYTES}
    + (tonumber(t[1] or 0) + mailboxes) * ${ACCOUNTED_MAILBOX_BYTES}
    + tonumber(t[5] or 0) + tonumber(t[4] or 0) * ${ACCOUNTED_BLOB_BYTES}, tonumber(t[1] or 0)
end`;

/**
 * Deletes a blob, its chunks and its place in `blobs`, and takes it off the totals. Its chunk keys
 * are named from ARGV-given prefixes rather than declared in KEYS (there may be thousands): one
 * Redis primary, not Cluster, as everywhere here.
 */
const DROP_BLOB = `
local function drop_blob(blob, blobs, stats, hex, chunks)
  local b = redis.call('HMGET', blob, 'count', 'size', 'wbytes')
  if not b[1] then
    redis.call('ZREM', blobs, hex)
    return 0
  end
  for i = 0, tonumber(b[1]) - 1 do redis.call('DEL', chunks .. i) end
  redis.call('DEL', blob)
  redis.call('ZREM', blobs, hex)
  redis.call('HINCRBY', stats, 'blobs', -1)
  redis.call('HINCRBY', stats, 'blobsealed', 0 - tonumber(b[2]))
  redis.call('HINCRBY', stats, 'blobbytes', 0 - tonumber(b[3]))
  return 1
end`;

/**
 * KEYS blob, blobs, stats. ARGV write hash, count, size, expires, read hashes (concatenated), max
 * blob bytes, max storage bytes, blob id (hex). Token hashes are compared with Lua's `==` here and
 * in BLOB_DONE, as the deposit token's are (see DEPOSIT): timing could reveal bytes of a stored
 * hash, from which no token that matches it can be computed. The relay itself compares in constant
 * time (blobs.ts).
 */
const CREATE_BLOB = `${ACCOUNTED}
local b = redis.call('HMGET', KEYS[1], 'write', 'count', 'size', 'readers')
if b[1] then
  if b[1] == ARGV[1] and b[2] == ARGV[2] and b[3] == ARGV[3] and b[4] == ARGV[5] then return 'exists' end
  return 'conflict'
end
local sealed = tonumber(redis.call('HGET', KEYS[3], 'blobsealed') or 0)
if sealed + tonumber(ARGV[3]) > tonumber(ARGV[6]) then return 'blob-full' end
if accounted(KEYS[3], 0, 0, 0) + tonumber(ARGV[3]) + ${ACCOUNTED_BLOB_BYTES} > tonumber(ARGV[7]) then return 'full' end
redis.call('HSET', KEYS[1], 'write', ARGV[1], 'count', ARGV[2], 'size', ARGV[3], 'written', 0, 'wbytes', 0,
  'expires', ARGV[4], 'readers', ARGV[5], 'done', string.rep(string.char(0), string.len(ARGV[5]) / 32))
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[8])
redis.call('HINCRBY', KEYS[3], 'blobs', 1)
redis.call('HINCRBY', KEYS[3], 'blobsealed', ARGV[3])
return 'created'`;

/** KEYS blob, chunk key, stats. ARGV index, sealed chunk, now. */
const PUT_CHUNK = `
local b = redis.call('HMGET', KEYS[1], 'written', 'expires')
if not b[1] or tonumber(b[2]) <= tonumber(ARGV[3]) then return {'unknown'} end
local written, index = tonumber(b[1]), tonumber(ARGV[1])
if index < written then return {'retry'} end
if index > written then return {'ahead', written} end
redis.call('SET', KEYS[2], ARGV[2], 'PX', tonumber(b[2]) - tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[1], 'written', 1)
redis.call('HINCRBY', KEYS[1], 'wbytes', string.len(ARGV[2]))
redis.call('HINCRBY', KEYS[3], 'blobbytes', string.len(ARGV[2]))
return {'stored'}`;

/** KEYS blob, blobs, stats. ARGV read hash, now, blob id (hex), chunk key prefix. */
const BLOB_DONE = `${DROP_BLOB}
local b = redis.call('HMGET', KEYS[1], 'readers', 'done', 'expires')
if not b[1] or tonumber(b[3]) <= tonumber(ARGV[2]) then return 'unknown' end
local found
for i = 1, string.len(b[2]) do
  if string.byte(b[2], i) == 0 and string.sub(b[1], 32 * i - 31, 32 * i) == ARGV[1] then found = i end
end
if not found then return 'auth' end
local done = string.sub(b[2], 1, found - 1) .. string.char(1) .. string.sub(b[2], found + 1)
if string.find(done, string.char(0), 1, true) then
  redis.call('HSET', KEYS[1], 'done', done)
  return 'done'
end
drop_blob(KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4])
return 'deleted'`;

/** KEYS blob, blobs, stats. ARGV blob id (hex), chunk key prefix. */
const DELETE_BLOB = `${DROP_BLOB}
return drop_blob(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])`;

/** KEYS blobs, stats. ARGV now, batch, key prefix. Deletes up to `batch` expired blobs. */
const SWEEP_BLOBS = `${DROP_BLOB}
local n = 0
for _, hex in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  n = n + drop_blob(ARGV[3] .. 'blob:' .. hex, KEYS[1], KEYS[2], hex, ARGV[3] .. 'chunk:' .. hex .. ':')
end
return n`;

/** KEYS mailbox, stats. ARGV owner key, max mailboxes, max bytes. */
const CREATE = `${ACCOUNTED}
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then
  if owner == ARGV[1] then return 'exists' end
  return 'conflict'
end
local total, mailboxes = accounted(KEYS[2], 1, 0, 0)
if mailboxes >= tonumber(ARGV[2]) or total > tonumber(ARGV[3]) then return 'full' end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'messages', 0, 'bytes', 0)
redis.call('HINCRBY', KEYS[2], 'mailboxes', 1)
return 'created'`;

/** KEYS mailbox. ARGV token hash. 1 if set, 0 if there is no such mailbox. */
const SET_TOKEN = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[1])
return 1`;

/**
 * KEYS mailbox, messages, queue, expiry, seen, due, seq, stats, digests. ARGV address (hex), client
 * id, relay id, stored value, expiry, max messages, max bytes, channel, node, ciphertext digest,
 * max storage bytes, the hash of the deposit's token ("" for a plain deposit).
 * The token check compares SHA-256 hashes of 32-byte random tokens with Lua's `~=`: what its timing
 * could reveal is bytes of the stored hash, from which no token that matches it can be computed.
 */
const DEPOSIT = `${ACCOUNTED}
local count = redis.call('HGET', KEYS[1], 'messages')
if not count then return {'unknown-mailbox'} end
local token = redis.call('HGET', KEYS[1], 'token')
if token and token ~= ARGV[12] then return {'token'} end
if redis.call('ZSCORE', KEYS[5], ARGV[2]) then
  local digest = redis.call('HGET', KEYS[9], ARGV[2])
  if digest and digest ~= ARGV[10] then return {'id-reused'} end
  return {'duplicate'}
end
local size = string.len(ARGV[4]) - ${HEADER}
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes'))
if tonumber(count) + 1 > tonumber(ARGV[6]) or bytes + size > tonumber(ARGV[7]) then return {'quota'} end
if accounted(KEYS[8], 0, 1, size) > tonumber(ARGV[11]) then return {'full'} end
local seq = redis.call('INCR', KEYS[7])
local top = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')[2]
if top and tonumber(top) >= seq then
  seq = tonumber(top) + 1
  redis.call('SET', KEYS[7], seq)
end
seq = string.format('%d', seq)
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], seq, ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[2])
redis.call('HSET', KEYS[9], ARGV[2], ARGV[10])
redis.call('ZADD', KEYS[6], 'LT', ARGV[5], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'messages', 1)
redis.call('HINCRBY', KEYS[1], 'bytes', size)
redis.call('HINCRBY', KEYS[8], 'messages', 1)
redis.call('HINCRBY', KEYS[8], 'bytes', size)
redis.call('PUBLISH', ARGV[8], ARGV[1] .. ':' .. seq .. ':' .. ARGV[9])
return {'stored', seq}`;

/** KEYS queue, messages. ARGV after (seq), limit. Relay id, seq and stored value of each, in order. */
const PENDING = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i = 1, #ids, 2 do
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], ids[i])
end
return out`;

/**
 * Deletes one message by relay id and returns its ciphertext's size; the caller adjusts the counters.
 * Its queue and expiry entries go even when the message itself is missing (evicted, deleted by
 * hand): left behind, they would keep the mailbox due for ever and the sweep would never end.
 */
const DELETE_ONE = `
local function delete_one(messages, queue, expiry, id)
  local stored = redis.call('HSTRLEN', messages, id)
  redis.call('ZREM', queue, id)
  redis.call('ZREM', expiry, id)
  if stored == 0 then return nil end
  redis.call('HDEL', messages, id)
  return stored - ${HEADER}
end`;

/** KEYS mailbox, messages, queue, expiry, stats. ARGV relay id. */
const ACK = `${DELETE_ONE}
local size = delete_one(KEYS[2], KEYS[3], KEYS[4], ARGV[1])
if not size then return 0 end
redis.call('HINCRBY', KEYS[1], 'messages', -1)
redis.call('HINCRBY', KEYS[1], 'bytes', 0 - size)
redis.call('HINCRBY', KEYS[5], 'messages', -1)
redis.call('HINCRBY', KEYS[5], 'bytes', 0 - size)
return 1`;

/** KEYS mailbox, messages, queue, expiry, seen, due, stats, digests. ARGV address (hex). */
const DELETE_MAILBOX = `
local counts = redis.call('HMGET', KEYS[1], 'messages', 'bytes')
if not counts[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[8])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('HINCRBY', KEYS[7], 'mailboxes', -1)
redis.call('HINCRBY', KEYS[7], 'messages', 0 - tonumber(counts[1]))
redis.call('HINCRBY', KEYS[7], 'bytes', 0 - tonumber(counts[2]))
return 1`;

/**
 * KEYS mailbox, messages, queue, expiry, seen, due, stats, digests. ARGV address (hex), now, batch.
 * Deletes up to `batch` of the mailbox's messages that expired at or before `now`, and its client
 * ids that did, then moves the mailbox in `due` to its next expiry. Run twice, the second run
 * finds nothing, so relays may sweep at the same time.
 */
const SWEEP_MAILBOX = `${DELETE_ONE}
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[8])
  redis.call('ZREM', KEYS[6], ARGV[1])
  return 0
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local n, freed = 0, 0
for _, id in ipairs(expired) do
  local size = delete_one(KEYS[2], KEYS[3], KEYS[4], id)
  if size then
    n = n + 1
    freed = freed + size
  end
end
for _, client in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[2])) do
  redis.call('HDEL', KEYS[8], client)
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[2])
if n > 0 then
  redis.call('HINCRBY', KEYS[1], 'messages', 0 - n)
  redis.call('HINCRBY', KEYS[1], 'bytes', 0 - freed)
  redis.call('HINCRBY', KEYS[7], 'messages', 0 - n)
  redis.call('HINCRBY', KEYS[7], 'bytes', 0 - freed)
end
local a = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')[2]
local b = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')[2]
local nxt = a
if b and (not a or tonumber(b) < tonumber(a)) then nxt = b end
if nxt then
  redis.call('ZADD', KEYS[6], nxt, ARGV[1])
else
  redis.call('ZREM', KEYS[6], ARGV[1])
end
return n`;

const SCRIPTS = {
  parleyCreate: { numberOfKeys: 2, lua: CREATE },
  parleySetToken: { numberOfKeys: 1, lua: SET_TOKEN },
  parleyDeposit: { numberOfKeys: 9, lua: DEPOSIT },
  parleyPending: { numberOfKeys: 2, lua: PENDING },
  parleyAck: { numberOfKeys: 5, lua: ACK },
  parleyDeleteMailbox: { numberOfKeys: 8, lua: DELETE_MAILBOX },
  parleySweepMailbox: { numberOfKeys: 8, lua: SWEEP_MAILBOX },
  parleyCreateBlob: { numberOfKeys: 3, lua: CREATE_BLOB },
  parleyPutChunk: { numberOfKeys: 3, lua: PUT_CHUNK },
  parleyBlobDone: { numberOfKeys: 3, lua: BLOB_DONE },
  parleyDeleteBlob: { numberOfKeys: 3, lua: DELETE_BLOB },
  parleySweepBlobs: { numberOfKeys: 2, lua: SWEEP_BLOBS },
} as const;
type ScriptName = keyof typeof SCRIPTS | "parleyPendingBuffer";
type Arg = string | Buffer | Uint8Array | number;

// ---- persistence -------------------------------------------------------------------------------

/** Redis's persistence settings as read at start; null where they could not be read. */
export interface RedisPersistence {
  readonly version: string | null;
  readonly appendonly: string | null;
  readonly appendfsync: string | null;
  readonly maxmemoryPolicy: string | null;
  /** RDB snapshot rules (`save`): "" means none. */
  readonly save: string | null;
  /** The slow log: commands slower than this many microseconds are kept (negative: none)... */
  readonly slowlogSlowerThan: number | null;
  /** ... the last this many of them (0: none). */
  readonly slowlogMaxLen: number | null;
  /** CONFIG GET was refused (managed Redis often disables it); INFO was used instead. */
  readonly configRefused: boolean;
}

/** Persistence before it was read: everything unknown. */
const UNREAD: RedisPersistence = {
  version: null,
  appendonly: null,
  appendfsync: null,
  maxmemoryPolicy: null,
  save: null,
  slowlogSlowerThan: null,
  slowlogMaxLen: null,
  configRefused: false,
};

/** Whether Redis writes RDB snapshots: true, false, or null when that could not be read. */
function writesSnapshots(p: RedisPersistence): boolean | null {
  return p.save === null ? null : p.save.trim() !== "";
}

/** Whether Redis's slow log keeps commands (and so their first arguments): null when unknown. */
function keepsSlowLog(p: RedisPersistence): boolean | null {
  if (p.slowlogSlowerThan === null || p.slowlogMaxLen === null) return null;
  return p.slowlogSlowerThan >= 0 && p.slowlogMaxLen > 0;
}

/**
 * Where Redis may keep a message (or its mailbox address) after the relay deleted it, one sentence
 * each, from the persistence settings: for the transparency statement and the start-up warnings.
 * `rewriteSeconds` is how often the relays ask for an AOF rewrite; null: they do not (or may not).
 */
export function describeCopies(p: RedisPersistence, rewriteSeconds: number | null): string[] {
  const out = ["memory: Redis deletes a message at once but does not overwrite the memory it frees"];
  // BGREWRITEAOF writes new files and unlinks the old ones: their disk blocks are freed, never
  // overwritten (nothing like SQLite's secure_delete), so the bytes stay on the disk until reused.
  const unlinked =
    "; a rewrite writes new files and deletes the old ones, whose disk blocks are freed but not overwritten";
  if (p.appendonly === "no") {
    out.push("append-only file: none (appendonly no)");
  } else if (p.appendonly === "yes" && rewriteSeconds !== null) {
    out.push(
      `append-only file: keeps a deleted message until the file is next rewritten, which the relays ask Redis to do every ${rewriteSeconds} s${unlinked}`,
    );
  } else if (p.appendonly === "yes") {
    out.push(
      `append-only file: keeps a deleted message until Redis next rewrites the file of its own accord (the relays do not ask for rewrites, or Redis refuses them)${unlinked}`,
    );
  } else {
    out.push(
      `append-only file: could not be read whether Redis keeps one; if it does, it keeps a deleted message until the file is next rewritten${unlinked}`,
    );
  }
  const snapshots = writesSnapshots(p);
  if (snapshots === false) out.push('snapshots: none (save "")');
  else if (snapshots === true) {
    out.push(
      `snapshots: Redis writes RDB snapshots (dump.rdb, save "${p.save}"), each of which keeps every message stored at that moment until the next snapshot replaces it`,
    );
  } else {
    out.push(
      "snapshots: could not be read whether Redis writes RDB snapshots (dump.rdb), which would keep every message stored at that moment until the next one",
    );
  }
  const slowlog = keepsSlowLog(p);
  if (slowlog === false)
    out.push("slow log: keeps nothing (slowlog-log-slower-than -1 or slowlog-max-len 0)");
  else if (slowlog === true) {
    out.push(
      `slow log: Redis keeps in memory the last ${p.slowlogMaxLen} commands that took longer than ${p.slowlogSlowerThan} µs, with the first 128 bytes of each of their arguments (for the relay's commands: mailbox addresses, message ids and the start of the ciphertext), until newer slow commands push them out`,
    );
  } else {
    out.push(
      "slow log: could not be read whether Redis keeps slow commands with the first 128 bytes of each argument (mailbox addresses, message ids and the start of the ciphertext)",
    );
  }
  return out;
}

/** What an acknowledged deposit survives, in one sentence, from the persistence settings. */
export function describeDurability(p: RedisPersistence): string {
  if (p.appendonly === "no") {
    return "Redis without an append-only file: an acknowledged deposit is in Redis's memory only and is lost if Redis restarts (an RDB snapshot, if configured, keeps what was there at the last snapshot)";
  }
  if (p.appendonly !== "yes") {
    return "Redis, whose persistence settings could not be read: what an acknowledged deposit survives depends on how that Redis is configured";
  }
  switch (p.appendfsync) {
    case "always":
      return "Redis with an append-only file fsynced before every acknowledgement (appendfsync always): an acknowledged deposit survives a crash of Redis or of its machine";
    case "everysec":
      return "Redis with an append-only file fsynced about once a second (appendfsync everysec): an acknowledged deposit is written to the file at once (within two seconds while the disk is slow) and reaches the disk within about a second more, so a crash of Redis or of its machine can lose the last two seconds or so of deposits";
    case "no":
      return "Redis with an append-only file that the operating system flushes when it chooses (appendfsync no): an acknowledged deposit is in the file and survives a crash of Redis, but a power loss or a crash of its machine can lose the last half minute or so of deposits";
    default:
      return "Redis with an append-only file whose fsync policy could not be read: an acknowledged deposit survives a crash of Redis; what a power loss may lose depends on that Redis's settings";
  }
}

// ---- errors -------------------------------------------------------------------------------------

/** Replies that mean "not now" (loading, out of memory, refusing writes, auth), not a bug here. */
const UNAVAILABLE_REPLY =
  /^(LOADING|BUSY|MISCONF|READONLY|MASTERDOWN|TRYAGAIN|OOM|NOAUTH|WRONGPASS|NOPERM)\b/;

/**
 * An error's message without what could identify a mailbox or hold ciphertext: the arguments Redis
 * echoes in some replies ("with args beginning with: ..."), and any long run of hex (a key name).
 */
export function redactRedisMessage(message: string): string {
  return message
    .replace(/,? with args beginning with:[\s\S]*$/i, "")
    .replace(/[0-9a-f]{24,}/gi, "[redacted]");
}

/** What ioredis says when a command meets a connection that is down (no offline queue). */
const OFFLINE_REFUSAL = /Stream isn't writeable and enableOfflineQueue options is false/;

/**
 * The error a storage method throws for a failed command: always a fresh one carrying only the
 * command's name and the redacted message. ioredis attaches the command (key names, with mailbox
 * addresses, and ciphertext buffers) to its errors; none of that may reach a log.
 */
function storageError(e: unknown, command: string): Error {
  if (e instanceof StorageUnavailableError) return e;
  const message = `Redis ${command}: ${redactRedisMessage(e instanceof Error ? e.message : String(e))}`;
  // A reply error is Redis refusing a command: a bug in a script or a key of the wrong type,
  // except for the few replies that mean the server cannot serve anyone right now.
  if (e instanceof Error && e.name === "ReplyError" && !UNAVAILABLE_REPLY.test(e.message)) {
    return new Error(message);
  }
  return new StorageUnavailableError(message);
}

// ---- the storage ------------------------------------------------------------------------------

export interface RedisStorageOptions {
  readonly target: RedisTarget;
  readonly logger?: Logger;
  /** A command, or a connection attempt, fails after this many ms. Default 5000. */
  readonly timeoutMs?: number;
  /** Every key and the channel start with this. Default "parley:v1:". */
  readonly prefix?: string;
  /** How often (ms) the relays sharing this Redis ask it to rewrite its AOF. 0 (default): never. */
  readonly rewriteIntervalMs?: number;
  /** `--max-storage`: default REDIS_DEFAULT_MAX_BYTES. Every relay on one Redis should say the same. */
  readonly maxBytes?: number;
  /** `--max-mailboxes`: default `defaultMaxMailboxes(maxBytes)`. */
  readonly maxMailboxes?: number;
}

/** `--max-storage` for a Redis storage when it is not set (set Redis's maxmemory above it). */
export const REDIS_DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;

interface MailboxKeys {
  readonly hex: string;
  readonly mailbox: string;
  readonly messages: string;
  readonly queue: string;
  readonly expiry: string;
  readonly seen: string;
  readonly digests: string;
}

export class RedisStorage implements Storage {
  readonly kind = "redis";
  /** host:port/db, never the password: for logs and messages. */
  readonly display: string;
  /** A random id for this relay process, so that it can ignore its own notifications. */
  readonly node = randomBytes(8).toString("hex");
  durability = describeDurability(UNREAD);
  readonly capacity: StorageCapacity;
  persistence: RedisPersistence | null = null;
  /** Notifications on the channel that were not of the expected shape, and so ignored. */
  ignoredNotifications = 0;
  private readonly redis: Redis;
  private sub: Redis | undefined;
  private events: StorageEvents | undefined;
  private readonly options: RedisOptions;
  private readonly log: Logger | undefined;
  private readonly timeoutMs: number;
  private readonly prefix: string;
  private readonly rewriteIntervalMs: number;
  private readonly firstReady: Promise<void>;
  private everReady = false;
  private closed = false;
  private readonly timers: NodeJS.Timeout[] = [];
  /** When each connection was lost (ms since the epoch), while it is down. */
  private readonly downSince = new Map<string, number>();
  private rewriteRefused = false;
  /** The last connection error, to say why the first connection did not come. */
  private lastError: string | undefined;
  /** The seq of the last notification heard (this relay's own included) since (re)subscribing. */
  private lastHeardSeq = 0;

  constructor(options: RedisStorageOptions) {
    const t = options.target;
    this.display = redisDisplay(t);
    this.log = options.logger;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.rewriteIntervalMs = options.rewriteIntervalMs ?? 0;
    const maxBytes = options.maxBytes ?? REDIS_DEFAULT_MAX_BYTES;
    this.capacity = { maxBytes, maxMailboxes: options.maxMailboxes ?? defaultMaxMailboxes(maxBytes) };
    this.options = {
      host: t.host,
      port: t.port,
      db: t.db,
      ...(t.username !== null ? { username: t.username } : {}),
      ...(t.password !== null ? { password: t.password } : {}),
      ...(t.tls ? { tls: {} } : {}),
      connectionName: "parley-relay",
      // Fail, never wait: no queue while disconnected, and a command in flight when the connection
      // drops is rejected at once rather than sent again after a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      // Bounded time: a command without a reply fails, and a socket that sent nothing back for that
      // long is closed (which starts a reconnect); so does a connection attempt.
      commandTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
      // Reconnect for ever, quickly: 100 ms, doubling to 2 s, with jitter.
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times - 1, 5), 2000) + Math.random() * 100,
      scripts: SCRIPTS,
      enableAutoPipelining: true,
    };
    this.redis = new Redis(this.options);
    this.firstReady = new Promise((resolve) => this.redis.once("ready", () => resolve()));
    this.follow(this.redis, "commands");
  }

  /** Logs a connection's losses and recoveries once each; a recovery triggers a resync. */
  private follow(client: Redis, connection: "commands" | "notifications"): void {
    const lost = (err?: Error) => {
      if (err) this.lastError = err.message;
      if (this.closed || this.downSince.has(connection)) {
        if (err) this.log?.debug({ connection, err: err.message }, "redis still unavailable");
        return;
      }
      this.downSince.set(connection, Date.now());
      this.log?.warn(
        { redis: this.display, connection, err: err?.message },
        this.everReady ? "redis connection lost" : "redis unreachable",
      );
    };
    client.on("error", (err: Error) => lost(err));
    client.on("close", () => lost());
    client.on("ready", () => {
      if (connection === "commands") this.everReady = true;
      const since = this.downSince.get(connection);
      this.downSince.delete(connection);
      if (since === undefined) return;
      this.log?.info(
        { redis: this.display, connection, downSeconds: (Date.now() - since) / 1000 },
        "redis connection restored",
      );
      // Commands failed while it was down (deliveries among them): read every mailbox again.
      if (connection === "commands") this.events?.resync();
    });
  }

  /**
   * Waits for the first connection (at most the timeout), checks the server version, and reads
   * and logs the persistence settings. The CLI calls it before serving; without it, the first
   * command waits for the connection the same way.
   */
  async open(): Promise<void> {
    await this.usable();
    const server = await this.run("INFO", () => this.redis.info("server"));
    const version = /^redis_version:(\S+)/m.exec(server)?.[1] ?? null;
    const [major = 0, minor = 0] = (version ?? "0.0").split(".").map(Number);
    if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) {
      throw new Error(
        `Redis ${version ?? "of unknown version"} at ${this.display}: parley-relay needs ${MIN_VERSION.join(".")} or later`,
      );
    }
    const p = await this.readPersistence(version);
    this.persistence = p;
    this.durability = describeDurability(p);
    const fields = {
      redis: this.display,
      version: p.version,
      appendonly: p.appendonly,
      appendfsync: p.appendfsync,
      maxmemoryPolicy: p.maxmemoryPolicy,
      durability: this.durability,
    };
    if (p.appendonly !== "yes") this.log?.warn(fields, "redis durability: no append-only file");
    else this.log?.info(fields, "redis durability");
    if (p.maxmemoryPolicy !== null && p.maxmemoryPolicy !== "noeviction") {
      this.log?.warn(
        { redis: this.display, maxmemoryPolicy: p.maxmemoryPolicy },
        "redis may evict stored messages when full: set maxmemory-policy noeviction",
      );
    }
    if (writesSnapshots(p)) {
      this.log?.warn(
        { redis: this.display, save: p.save },
        'redis writes RDB snapshots: dump.rdb keeps deleted messages until the next snapshot; set save ""',
      );
    }
    if (keepsSlowLog(p)) {
      this.log?.warn(
        { redis: this.display, slowlogSlowerThan: p.slowlogSlowerThan, slowlogMaxLen: p.slowlogMaxLen },
        "redis slow log keeps mailbox addresses and the start of ciphertexts of slow commands; set slowlog-log-slower-than -1",
      );
    }
    if (p.configRefused) {
      this.log?.warn(
        { redis: this.display },
        "redis refuses CONFIG GET: whether it writes RDB snapshots or keeps a slow log cannot be read; see /transparency",
      );
    }
    if (this.rewriteIntervalMs > 0 && p.appendonly === "yes") {
      const timer = setInterval(() => void this.rewrite(), this.rewriteIntervalMs);
      timer.unref();
      this.timers.push(timer);
    }
  }

  private async readPersistence(version: string | null): Promise<RedisPersistence> {
    const get = async (name: string): Promise<string | null> => {
      const reply = (await this.redis.config("GET", name)) as unknown;
      if (Array.isArray(reply)) return reply[1] === undefined ? null : String(reply[1]);
      const value = (reply as Record<string, unknown> | null)?.[name];
      return value === undefined ? null : String(value);
    };
    const integer = (v: string | null) => (v === null || !/^-?\d+$/.test(v) ? null : Number(v));
    try {
      return {
        version,
        appendonly: await get("appendonly"),
        appendfsync: await get("appendfsync"),
        maxmemoryPolicy: await get("maxmemory-policy"),
        save: await get("save"),
        slowlogSlowerThan: integer(await get("slowlog-log-slower-than")),
        slowlogMaxLen: integer(await get("slowlog-max-len")),
        configRefused: false,
      };
    } catch (e) {
      // Managed services often rename or forbid CONFIG; INFO still says whether AOF is on (but
      // nothing about snapshot rules or the slow log).
      this.log?.debug(
        { err: redactRedisMessage((e as Error).message) },
        "CONFIG GET refused; reading INFO persistence",
      );
      const info = await this.run("INFO", () => this.redis.info("persistence"));
      const aof = /^aof_enabled:(\d)/m.exec(info)?.[1];
      return {
        ...UNREAD,
        version,
        appendonly: aof === undefined ? null : aof === "1" ? "yes" : "no",
        configRefused: true,
      };
    }
  }

  /** Seconds between the AOF rewrites this relay asks for; null when it asks for none. */
  get appendOnlyFileRewriteSeconds(): number | null {
    const asks = this.rewriteIntervalMs > 0 && this.persistence?.appendonly === "yes" && !this.rewriteRefused;
    return asks ? this.rewriteIntervalMs / 1000 : null;
  }

  /** For the transparency statement: how deletion works here, from the settings read at start. */
  disclosure(): StorageDisclosure {
    const rewriteSeconds = this.appendOnlyFileRewriteSeconds;
    return {
      deletion:
        "messages after acknowledgement or expiry, as far as Redis can be asked: they are deleted from Redis at once, but Redis may keep copies for a while (see storageCopies)",
      appendOnlyFileRewriteSeconds: rewriteSeconds,
      copies: describeCopies(this.persistence ?? UNREAD, rewriteSeconds),
    };
  }

  /**
   * Asks Redis to rewrite its append-only file, so that the ciphertext of deleted messages leaves
   * its files (Redis writes new ones and unlinks the old: the disk blocks are freed, not
   * overwritten); a lease makes one relay at a time do it, once per interval.
   */
  private async rewrite(): Promise<void> {
    if (this.rewriteRefused || this.closed || this.redis.status !== "ready") return;
    try {
      const seconds = Math.max(1, Math.floor(this.rewriteIntervalMs / 1000) - 1);
      const lease = await this.redis.set(`${this.prefix}aof-rewrite`, this.node, "EX", seconds, "NX");
      if (lease !== "OK") return;
      await this.redis.bgrewriteaof();
      this.log?.info({ redis: this.display }, "redis append-only file rewrite started");
    } catch (e) {
      const message = redactRedisMessage((e as Error).message);
      if (/already in progress/i.test(message)) return;
      if ((e as Error).name === "ReplyError" && /unknown command|NOPERM/i.test(message)) {
        this.rewriteRefused = true;
        this.log?.warn(
          { redis: this.display, err: message },
          "redis refuses BGREWRITEAOF: deleted ciphertext stays in its append-only file until Redis rewrites it itself",
        );
        return;
      }
      this.log?.debug({ err: message }, "redis append-only file rewrite not started");
    }
  }

  /** Resolves once commands can be sent; rejects at once when the connection is down. */
  private async usable(): Promise<void> {
    if (this.closed) throw new StorageUnavailableError("storage is closed");
    if (this.redis.status === "ready") return;
    if (this.everReady) throw new StorageUnavailableError(`Redis at ${this.display} is not connected`);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.firstReady,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new StorageUnavailableError(
                  `no connection to Redis at ${this.display} within ${this.timeoutMs / 1000} s${this.lastError ? ` (${this.lastError})` : ""}`,
                ),
              ),
            this.timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs one command (named for errors); every failure is rethrown through `storageError`. */
  private async run<T>(command: string, op: () => Promise<T>): Promise<T> {
    await this.usable();
    try {
      return await op();
    } catch (e) {
      // The connection dropped between the check above and the write: ioredis's offline refusal,
      // the same condition as a connection already known to be down.
      if (e instanceof Error && OFFLINE_REFUSAL.test(e.message))
        throw new StorageUnavailableError(`Redis at ${this.display} is not connected`);
      throw storageError(e, command);
    }
  }

  private script(name: ScriptName, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return this.run(name, () => {
      const fn = (this.redis as unknown as Record<ScriptName, (...a: Arg[]) => Promise<unknown>>)[name];
      // ioredis sends a Buffer as bytes but would turn any other Uint8Array into text.
      const wire = args.map((a) =>
        a instanceof Uint8Array && !Buffer.isBuffer(a)
          ? Buffer.from(a.buffer, a.byteOffset, a.byteLength)
          : a,
      );
      return fn.call(this.redis, ...keys, ...wire);
    });
  }

  private keys(address: Uint8Array | string): MailboxKeys {
    const hex = typeof address === "string" ? address : toHex(address);
    const p = this.prefix;
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

  private get global() {
    const p = this.prefix;
    return { seq: `${p}seq`, stats: `${p}stats`, due: `${p}due`, channel: `${p}deposits` };
  }

  async createMailbox(address: Uint8Array, ownerKey: Uint8Array): Promise<CreateResult> {
    const k = this.keys(address);
    const result = await this.script(
      "parleyCreate",
      [k.mailbox, this.global.stats],
      [ownerKey, this.capacity.maxMailboxes, this.capacity.maxBytes],
    );
    return result as CreateResult;
  }

  async mailboxOwner(address: Uint8Array): Promise<Uint8Array | null> {
    const owner = await this.run("HGET", () => this.redis.hgetBuffer(this.keys(address).mailbox, "owner"));
    return owner ? new Uint8Array(owner) : null;
  }

  async setDepositToken(address: Uint8Array, tokenHash: Uint8Array): Promise<boolean> {
    return (await this.script("parleySetToken", [this.keys(address).mailbox], [tokenHash])) === 1;
  }

  async deleteMailbox(address: Uint8Array): Promise<boolean> {
    const k = this.keys(address);
    const g = this.global;
    const deleted = await this.script(
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
    const [status, seq] = (await this.script(
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
        this.node,
        depositDigest(r.ciphertext),
        this.capacity.maxBytes,
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
      const reply = (await this.script(
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
    const found = await this.script(
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
      const due = await this.run("ZRANGEBYSCORE", () =>
        this.redis.zrangebyscore(g.due, "-inf", now, "LIMIT", 0, SWEEP_MAILBOXES),
      );
      if (due.length === 0) return deleted;
      // A round that deleted nothing and left the same mailboxes due would repeat for ever: stop,
      // and let the next sweep try again.
      const round = due.join(" ");
      if (round === stuck) {
        this.log?.warn({ mailboxes: due.length }, "redis sweep made no progress; the next sweep tries again");
        return deleted;
      }
      const counts = await Promise.all(
        due.map((hex) => {
          const k = this.keys(hex);
          return this.script(
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

  private blobKeys(id: Uint8Array | string) {
    const hex = typeof id === "string" ? id : toHex(id);
    const p = this.prefix;
    return { hex, blob: `${p}blob:${hex}`, chunks: `${p}chunk:${hex}:`, blobs: `${p}blobs` };
  }

  async createBlob(spec: BlobSpec, maxBlobBytes: number): Promise<CreateBlobResult> {
    const k = this.blobKeys(spec.id);
    const result = await this.script(
      "parleyCreateBlob",
      [k.blob, k.blobs, this.global.stats],
      [
        Buffer.from(spec.writeTokenHash),
        spec.chunkCount,
        spec.sealedSize,
        spec.expiresAt,
        Buffer.concat(spec.readTokenHashes),
        maxBlobBytes,
        this.capacity.maxBytes,
        k.hex,
      ],
    );
    return result as CreateBlobResult;
  }

  async blob(id: Uint8Array, now: number): Promise<BlobState | null> {
    const [write, count, size, written, expires, readers, done] = await this.run("HMGET", () =>
      this.redis.hmgetBuffer(
        this.blobKeys(id).blob,
        "write",
        "count",
        "size",
        "written",
        "expires",
        "readers",
        "done",
      ),
    );
    if (!write || !count || !size || !written || !expires || !readers || !done) return null;
    const expiresAt = Number(expires.toString());
    if (expiresAt <= now) return null;
    return {
      writeTokenHash: new Uint8Array(write),
      chunkCount: Number(count.toString()),
      sealedSize: Number(size.toString()),
      written: Number(written.toString()),
      expiresAt,
      readers: Array.from({ length: done.length }, (_, i) => ({
        hash: new Uint8Array(readers.subarray(32 * i, 32 * i + 32)),
        done: done[i] === 1,
      })),
    };
  }

  async putChunk(
    id: Uint8Array,
    index: number,
    sealedChunk: Uint8Array,
    now: number,
  ): Promise<PutChunkResult> {
    const k = this.blobKeys(id);
    const [status, next] = (await this.script(
      "parleyPutChunk",
      [k.blob, `${k.chunks}${index}`, this.global.stats],
      [index, sealedChunk, now],
    )) as [string, number?];
    if (status === "ahead") return { status, next: Number(next) };
    return { status: status as "stored" | "retry" | "unknown" };
  }

  async getChunk(id: Uint8Array, index: number, now: number): Promise<Uint8Array | null> {
    const blob = await this.blob(id, now);
    if (!blob || index >= blob.written) return null;
    const chunk = await this.run("GET", () => this.redis.getBuffer(`${this.blobKeys(id).chunks}${index}`));
    return chunk ? new Uint8Array(chunk) : null;
  }

  async blobDone(id: Uint8Array, readTokenHash: Uint8Array, now: number): Promise<BlobDoneResult> {
    const k = this.blobKeys(id);
    return (await this.script(
      "parleyBlobDone",
      [k.blob, k.blobs, this.global.stats],
      [Buffer.from(readTokenHash), now, k.hex, k.chunks],
    )) as BlobDoneResult;
  }

  async deleteBlob(id: Uint8Array): Promise<boolean> {
    const k = this.blobKeys(id);
    return (
      (await this.script("parleyDeleteBlob", [k.blob, k.blobs, this.global.stats], [k.hex, k.chunks])) === 1
    );
  }

  async sweepBlobs(now: number): Promise<number> {
    let deleted = 0;
    for (;;) {
      const n = Number(
        await this.script(
          "parleySweepBlobs",
          [`${this.prefix}blobs`, this.global.stats],
          [now, 8, this.prefix],
        ),
      );
      deleted += n;
      if (n < 8) return deleted;
    }
  }

  async stats(): Promise<StorageStats> {
    const [mailboxes, messages, bytes, blobs, blobSealed, blobBytes] = await this.run("HMGET", () =>
      this.redis.hmget(
        this.global.stats,
        "mailboxes",
        "messages",
        "bytes",
        "blobs",
        "blobsealed",
        "blobbytes",
      ),
    );
    const totals = {
      mailboxes: Number(mailboxes ?? 0),
      messages: Number(messages ?? 0),
      bytes: Number(bytes ?? 0),
      blobs: Number(blobs ?? 0),
      blobBytes: Number(blobBytes ?? 0),
      blobReservedBytes: Number(blobSealed ?? 0),
    };
    const countedBytes =
      totals.bytes +
      totals.messages * ACCOUNTED_MESSAGE_BYTES +
      totals.mailboxes * ACCOUNTED_MAILBOX_BYTES +
      totals.blobReservedBytes +
      totals.blobs * ACCOUNTED_BLOB_BYTES;
    return { ...totals, countedBytes };
  }

  async ready(): Promise<boolean> {
    if (this.closed || this.redis.status !== "ready") return false;
    if (this.sub && this.sub.status !== "ready") return false;
    try {
      await this.redis.ping();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Subscribes, on a connection of its own, to the deposit channel. After every (re)subscription
   * `events.resync()` runs, since deposits published while it was down were not heard.
   */
  watch(events: StorageEvents): void {
    if (this.sub) throw new Error("watch() was already called");
    this.events = events;
    const sub = new Redis({ ...this.options, connectionName: "parley-relay-notifications" });
    this.sub = sub;
    this.follow(sub, "notifications");
    const channel = this.global.channel;
    sub.on("ready", () => {
      this.lastHeardSeq = 0;
      sub.subscribe(channel).then(
        () => this.events?.resync(),
        (e: Error) => {
          this.log?.debug({ err: e.message }, "redis subscribe failed; reconnecting");
          sub.disconnect(true);
        },
      );
    });
    sub.on("message", (_channel: string, message: string) => this.heard(message));
    // Nothing else is sent on this connection: a ping now and then finds a dead one (socketTimeout).
    const timer = setInterval(() => {
      if (sub.status === "ready") sub.ping().catch(() => {});
    }, this.timeoutMs);
    timer.unref();
    this.timers.push(timer);
  }

  /**
   * One notification, "A:<seq>:<node>". Anything else is ignored (counted, and logged without its
   * content): this runs inside ioredis's socket handler, where a throw would end the process.
   */
  private heard(message: string): void {
    const m = NOTIFICATION.exec(message);
    const seq = m ? Number(m[2]) : Number.NaN;
    if (!m || !Number.isSafeInteger(seq)) {
      if (this.ignoredNotifications++ === 0 || this.ignoredNotifications % 1000 === 0) {
        this.log?.warn(
          { ignored: this.ignoredNotifications, length: message.length },
          "redis notification of an unexpected shape ignored",
        );
      }
      return;
    }
    // Redis publishes from inside the deposit script, so notifications arrive in seq order: one
    // that is not above the last means the counter went back (Redis lost its last writes, or was
    // restored from an older copy), and every subscriber's cursor may be past new messages.
    const wentBack = seq <= this.lastHeardSeq;
    this.lastHeardSeq = seq;
    if (wentBack) {
      this.log?.warn({ redis: this.display }, "redis arrival counter went back: reading every mailbox again");
      this.events?.resync();
    }
    if (m[3] !== this.node) this.events?.deposited(fromHex(m[1]!), seq);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.all(
      [this.redis, this.sub].map(async (c) => {
        if (!c) return;
        try {
          await c.quit();
        } catch {
          c.disconnect();
        }
      }),
    );
  }
}
