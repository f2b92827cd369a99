/**
 * @parley/relay: Parley's ciphertext-only store-and-forward relay.
 * @module
 */
export {
  ConfigError,
  DEFAULTS,
  helpText,
  loadConfig,
  parseDuration,
  parseRedisUrl,
  parseSize,
  type RedisTarget,
  type RelayConfig,
  redactUrl,
  redisDisplay,
} from "./config.js";
export { createLogger, type Logger } from "./log.js";
export { RelayServer, type RelayServerOptions } from "./server.js";
export { MemoryStorage } from "./storage/memory.js";
export {
  DEFAULT_PREFIX as REDIS_DEFAULT_PREFIX,
  describeCopies,
  describeDurability,
  type RedisPersistence,
  RedisStorage,
  type RedisStorageOptions,
} from "./storage/redis.js";
export { SqliteStorage } from "./storage/sqlite.js";
export type {
  DepositRequest,
  DepositResult,
  MailboxLimits,
  Storage,
  StorageDisclosure,
  StorageEvents,
  StorageStats,
  StoredMessage,
} from "./storage/types.js";
export { StorageUnavailableError } from "./storage/types.js";
export { transparencyStatement } from "./transparency.js";
export { RELAY_VERSION } from "./version.js";
