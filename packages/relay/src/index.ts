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
  parseSize,
  type RelayConfig,
} from "./config.js";
export { createLogger, type Logger } from "./log.js";
export { RelayServer, type RelayServerOptions } from "./server.js";
export { MemoryStorage } from "./storage/memory.js";
export { SqliteStorage } from "./storage/sqlite.js";
export type {
  DepositRequest,
  DepositResult,
  MailboxLimits,
  Storage,
  StorageStats,
  StoredMessage,
} from "./storage/types.js";
export { transparencyStatement } from "./transparency.js";
export { RELAY_VERSION } from "./version.js";
