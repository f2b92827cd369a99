// Every storage backend, for the tests that check one thing against each of them. One redis-server
// for the file; each Redis storage gets a key prefix of its own, so tests see only their own data, as
// each SQLite storage has its own directory. Every storage and directory a test made is closed and
// removed after it, passed or failed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll } from "vitest";
import { MemoryStorage } from "../src/storage/memory.js";
import { RedisStorage } from "../src/storage/redis.js";
import { SqliteStorage } from "../src/storage/sqlite.js";
import type { Storage } from "../src/storage/types.js";
import { type RedisServer, startRedis, stopAllRedis } from "./redis-server.js";

/** Registers the file's hooks; `name` goes into directory names and Redis key prefixes. */
export function storageBackends(name: string) {
  const dirs: string[] = [];
  const made: Storage[] = [];
  let redis: RedisServer | undefined;
  let redisStorages = 0;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.dispose();
    await stopAllRedis();
  });
  afterEach(async () => {
    await Promise.allSettled(made.splice(0).map((s) => s.close()));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  /** A new directory, removed after the test. */
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), `parley-${name}-`));
    dirs.push(dir);
    return dir;
  };
  /** `s`, closed after the test. */
  const keep = <S extends Storage>(s: S): S => {
    made.push(s);
    return s;
  };
  /** A new, empty storage of each kind, closed after the test. */
  const backends: Record<string, () => Storage> = {
    memory: () => keep(new MemoryStorage()),
    sqlite: () => keep(new SqliteStorage(tempDir())),
    redis: () =>
      keep(new RedisStorage({ target: redis!.target, prefix: `parley:${name}:${++redisStorages}:` })),
  };
  return { backends, tempDir, keep };
}
