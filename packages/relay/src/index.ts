/**
 * @parley/relay: Parley's ciphertext-only store-and-forward relay.
 * @module
 */
export { ConfigError, DEFAULTS, loadConfig, type RedisTarget, type RelayConfig } from "./config.js";
export { helpText } from "./config-help.js";
export { parseDuration, parseRedisUrl, parseSize, redactUrl, redisDisplay } from "./config-values.js";
export { createLogger, type Logger } from "./log.js";
export { RelayServer, type RelayServerOptions } from "./server.js";
export { MEMORY_DEFAULT_MAX_BYTES, MemoryStorage, type MemoryStorageOptions } from "./storage/memory.js";
export {
  DEFAULT_PREFIX as REDIS_DEFAULT_PREFIX,
  REDIS_DEFAULT_MAX_BYTES,
  RedisStorage,
  type RedisStorageOptions,
} from "./storage/redis.js";
export { describeCopies, describeDurability, type RedisPersistence } from "./storage/redis-persistence.js";
export { SqliteStorage, type SqliteStorageOptions } from "./storage/sqlite.js";
export type {
  CreateResult,
  DepositRequest,
  DepositResult,
  MailboxLimits,
  Storage,
  StorageCapacity,
  StorageDisclosure,
  StorageEvents,
  StorageStats,
  StoredMessage,
} from "./storage/types.js";
export { StorageUnavailableError } from "./storage/types.js";
export { transparencyStatement } from "./transparency.js";
export { RELAY_VERSION } from "./version.js";
