// The Redis storage's Lua scripts (redis.ts describes the keys they use). Every change that touches
// more than one key is one script, run with EVALSHA through ioredis' defineCommand, so that the
// quota and duplicate checks hold across the relays that share one Redis. Every script is atomic:
// no other client's command runs between its first and last line.
import { ACCOUNTED_BLOB_BYTES, ACCOUNTED_MAILBOX_BYTES, ACCOUNTED_MESSAGE_BYTES } from "./types.js";

/** A stored value: arrival and expiry (u64 BE each), then the ciphertext. */
export const HEADER = 16;

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

/** Every script, by the name of the command ioredis defines for it. */
export const SCRIPTS = {
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
/** A script's command (`parleyPendingBuffer`: `parleyPending`, replying with Buffers). */
export type ScriptName = keyof typeof SCRIPTS | "parleyPendingBuffer";
/** An argument of a script. */
export type Arg = string | Buffer | Uint8Array | number;
