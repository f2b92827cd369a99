#!/usr/bin/env node
// parley-relay: parse and validate the configuration, start the relay, and drain on SIGTERM/SIGINT.
import { ConfigError, loadConfig } from "./config.js";
import { helpText } from "./config-help.js";
import { prepareDataDir } from "./data-dir.js";
import { createLogger } from "./log.js";
import { RelayServer } from "./server.js";
import { MemoryStorage } from "./storage/memory.js";
import { RedisStorage } from "./storage/redis.js";
import { SqliteStorage } from "./storage/sqlite.js";
import type { Storage } from "./storage/types.js";
import { RELAY_VERSION } from "./version.js";

async function main(): Promise<number> {
  let parsed: ReturnType<typeof loadConfig>;
  try {
    parsed = loadConfig(process.argv.slice(2), process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`parley-relay: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (parsed.help) {
    process.stdout.write(`${helpText()}\n`);
    return 0;
  }
  if (parsed.version) {
    process.stdout.write(`${RELAY_VERSION}\n`);
    return 0;
  }
  const { config } = parsed;
  const logger = createLogger(config.logLevel);
  let storage: Storage;
  const capacity = {
    ...(config.maxStorageBytes !== null ? { maxBytes: config.maxStorageBytes } : {}),
    ...(config.maxMailboxes !== null ? { maxMailboxes: config.maxMailboxes } : {}),
  };
  if (config.redis) {
    const redis = new RedisStorage({
      target: config.redis,
      logger,
      timeoutMs: config.redisTimeoutSeconds * 1000,
      rewriteIntervalMs: config.redisRewriteSeconds * 1000,
      ...capacity,
    });
    try {
      await redis.open();
    } catch (e) {
      // Every message names host:port/db only, never the password.
      process.stderr.write(`parley-relay: cannot use Redis: ${(e as Error).message}\n`);
      await redis.close();
      return 1;
    }
    storage = redis;
  } else {
    try {
      if (config.storage === "sqlite") prepareDataDir(config.dataDir);
      storage =
        config.storage === "memory"
          ? new MemoryStorage(capacity)
          : new SqliteStorage(config.dataDir, { logger, ...capacity });
    } catch (e) {
      process.stderr.write(
        `parley-relay: cannot open storage in ${config.dataDir}: ${(e as Error).message}\n`,
      );
      return 1;
    }
  }
  let server: RelayServer;
  try {
    server = new RelayServer({ config, storage, logger });
    await server.listen();
  } catch (e) {
    process.stderr.write(
      `parley-relay: cannot listen on ${config.host}:${config.port}: ${(e as Error).message}\n`,
    );
    await storage.close();
    return 1;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "signal received");
      const force = setTimeout(() => {
        logger.error("drain timed out; exiting");
        resolve(1);
      }, config.shutdownTimeoutSeconds * 1000);
      force.unref();
      server.drain().then(
        () => {
          clearTimeout(force);
          resolve(0);
        },
        (e: unknown) => {
          logger.error({ err: e }, "drain failed");
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`parley-relay: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
