import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_ENVELOPE_LENGTH } from "@parley/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  blobStorageCap,
  ConfigError,
  DEFAULTS,
  loadConfig,
  MAX_PUT_CHUNK_FRAME,
  maxPayload,
  type RedisTarget,
} from "../src/config.js";
import { helpText } from "../src/config-help.js";
import { OPTIONS } from "../src/config-options.js";
import {
  formatDuration,
  formatSize,
  parseDuration,
  parseRedisUrl,
  parseSize,
  redactUrl,
  redisDisplay,
} from "../src/config-values.js";

function problems(argv: string[], env: Record<string, string> = {}): string[] {
  try {
    loadConfig(argv, env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("relay configuration", () => {
  it("defaults: loopback, 7-day retention, 64 KiB messages, SQLite", () => {
    const { config } = loadConfig([]);
    expect(config).toEqual(DEFAULTS);
    expect(config).toMatchObject({
      host: "127.0.0.1",
      ttlSeconds: 604800,
      maxMessageBytes: 65536,
      storage: "sqlite",
    });
  });

  it("parses durations and sizes", () => {
    expect([
      parseDuration("30s"),
      parseDuration("15m"),
      parseDuration("7d"),
      parseDuration("2h"),
      parseDuration("90"),
    ]).toEqual([30, 900, 604800, 7200, 90]);
    expect([parseDuration("7 days"), parseDuration("-1s"), parseDuration("1.5h"), parseDuration("")]).toEqual(
      [null, null, null, null],
    );
    expect([parseSize("65536"), parseSize("64KiB"), parseSize("4MiB"), parseSize("1MB")]).toEqual([
      65536, 65536, 4194304, 1000000,
    ]);
    expect([parseSize("lots"), parseSize("4XB"), parseSize("-1")]).toEqual([null, null, null]);
  });

  it("environment variables set values and flags override them, in both flag forms", () => {
    const { config } = loadConfig(["--ttl", "15m", "--port=9000"], {
      PARLEY_RELAY_TTL: "1d",
      PARLEY_RELAY_HOST: "0.0.0.0",
    });
    expect(config).toMatchObject({ ttlSeconds: 900, port: 9000, host: "0.0.0.0" });
  });

  it("reports every problem at once, one line each, naming the flag or variable", () => {
    const list = problems(
      ["--ttl", "soon", "--port", "70000", "--bogus", "--storage", "tape", "--log-level"],
      {
        PARLEY_RELAY_RATE_LIMIT: "0",
      },
    );
    expect(list).toHaveLength(6);
    expect(list.join("\n")).toMatch(/PARLEY_RELAY_RATE_LIMIT.*positive whole number/);
    expect(list.join("\n")).toMatch(/--ttl: "soon" is not a duration/);
    expect(list.join("\n")).toMatch(/--port: "70000" is not a port/);
    expect(list.join("\n")).toMatch(/--bogus: unknown option/);
    expect(list.join("\n")).toMatch(
      /--storage: "tape" must be sqlite, memory, or a redis:\/\/ or rediss:\/\/ URL/,
    );
    expect(list.join("\n")).toMatch(/--log-level: needs a value/);
  });

  it("checks options against each other", () => {
    expect(problems(["--ttl", "40d"])).toEqual([expect.stringMatching(/--ttl.*longer than --max-ttl/)]);
    expect(loadConfig(["--ttl", "40d", "--max-ttl", "60d"]).config.ttlSeconds).toBe(40 * 86400);
    expect(problems(["--tls-cert", "/etc/hostname"])).toEqual([
      expect.stringMatching(/give both or neither/),
      expect.stringMatching(/^--tls-cert: \/etc\/hostname is not a PEM certificate/),
    ]);
    expect(problems(["--tls-cert", "/nonexistent", "--tls-key", "/nonexistent"])).toHaveLength(2);
    expect(problems(["--mailbox-max-bytes", "1KiB"])).toEqual([
      expect.stringMatching(/smaller than --max-message-size/),
    ]);
  });

  it("takes a storage cap of at least 8 MiB and a mailbox limit, or leaves both to the storage", () => {
    expect(loadConfig([]).config).toMatchObject({ maxStorageBytes: null, maxMailboxes: null });
    expect(loadConfig(["--max-storage", "24MiB", "--max-mailboxes", "40"]).config).toMatchObject({
      maxStorageBytes: 24 * 1024 * 1024,
      maxMailboxes: 40,
    });
    expect(loadConfig([], { PARLEY_RELAY_MAX_STORAGE: "1GiB" }).config.maxStorageBytes).toBe(1024 ** 3);
    expect(problems(["--max-storage", "4MiB"])).toEqual(["--max-storage: at least 8MiB"]);
    expect(problems(["--max-storage", "lots", "--max-mailboxes", "0"])).toHaveLength(2);
  });

  it("takes a redis:// or rediss:// URL as --storage, with defaults for port and database", () => {
    expect(loadConfig(["--storage", "redis://10.0.0.5"]).config).toMatchObject({
      storage: "redis",
      redis: { tls: false, host: "10.0.0.5", port: 6379, db: 0, username: null, password: null },
    });
    expect(
      loadConfig([], { PARLEY_RELAY_STORAGE: "rediss://relay:p%40ss%3Aword@redis.example.org:6380/3" }).config
        .redis,
    ).toEqual({
      tls: true,
      host: "redis.example.org",
      port: 6380,
      db: 3,
      username: "relay",
      password: "p@ss:word",
    });
    expect(loadConfig(["--storage", "redis://:secret@[::1]:7000/"]).config.redis).toMatchObject({
      host: "::1",
      port: 7000,
      db: 0,
      username: null,
      password: "secret",
    });
    // A later --storage replaces an earlier one, Redis target included.
    expect(loadConfig(["--storage", "redis://h", "--storage", "memory"]).config).toMatchObject({
      storage: "memory",
      redis: null,
    });
    expect(parseRedisUrl("redis://h:1/15")).toMatchObject({ host: "h", port: 1, db: 15 });
    expect(redisDisplay(parseRedisUrl("rediss://u:pw@[::1]:7000/2") as RedisTarget)).toBe(
      "[::1]:7000/2 (TLS)",
    );
  });

  it("refuses any other URL or a malformed one, without ever showing the password", () => {
    const bad = [
      [
        "postgres://admin:hunter2@db/relay",
        /"postgres:\/\/\*\*\*@db\/relay" must be sqlite, memory, or a redis/,
      ],
      ["redis://:hunter2@h:99999/0", /"redis:\/\/\*\*\*@h:99999\/0" is not a valid URL/],
      ["redis://:hunter2@h/zero", /the path must be a database number/],
      ["redis://:hunter2@h/0?tls=1", /query strings and fragments are not supported/],
      ["redis://:hunter2@/0", /names no host|not a valid URL/],
      ["unix:hunter2@/run/redis.sock", /must be sqlite, memory, or a redis/],
    ] as const;
    for (const [url, why] of bad) {
      const list = problems(["--storage", url]);
      expect(list).toEqual([expect.stringMatching(why)]);
      expect(list[0]).not.toContain("hunter2");
    }
    expect(redactUrl("redis://user:pw@host:1/0")).toBe("redis://***@host:1/0");
    expect(redactUrl("redis://host:1/0")).toBe("redis://host:1/0");
  });

  it("never shows a password that holds / or @ (unencoded), whatever else is wrong", () => {
    // "/" ends the authority, so this one does not parse at all; "@" makes the path look odd.
    const shapes = [
      ["redis://:SECRET-ONE/SECRET-TWO@h/0", /"redis:\/\/\*\*\*@h\/0" is not a valid URL \(percent-encode/],
      [
        "redis://:SECRET-THREE@SECRET-FOUR@h/zero",
        /"redis:\/\/\*\*\*@h\/zero": the path must be a database number/,
      ],
      ["redis://u:SECRET-FIVE@x@h:1/0/1", /"redis:\/\/\*\*\*@h:1\/0\/1": the path must be a database number/],
    ] as const;
    for (const [url, why] of shapes) {
      const list = problems(["--storage", url]);
      expect(list).toEqual([expect.stringMatching(why)]);
      expect(list[0]).not.toMatch(/SECRET|ONE|TWO|THREE|FOUR|FIVE/);
      expect(redactUrl(url)).not.toMatch(/SECRET/);
    }
    expect(redactUrl("redis://:a/b@c@h:6379/0")).toBe("redis://***@h:6379/0");
  });

  it("refuses port 0 and absurd database numbers in a Redis URL", () => {
    expect(problems(["--storage", "redis://h:0/1"])).toEqual([
      expect.stringMatching(/"redis:\/\/h:0\/1": port 0 is not a port Redis can listen on/),
    ]);
    expect(problems(["--storage", "redis://:pw@h/123456789"])).toEqual([
      expect.stringMatching(/"redis:\/\/\*\*\*@h\/123456789": database 123456789 is above 9999/),
    ]);
    expect(parseRedisUrl("redis://h/9999")).toMatchObject({ db: 9999 });
    expect(parseRedisUrl("redis://h:65535")).toMatchObject({ port: 65535, db: 0 });
  });

  it("documents every option with its environment variable", () => {
    const help = helpText();
    for (const o of OPTIONS) {
      expect(help).toContain(o.flag);
      expect(help).toContain(o.env);
    }
    expect(loadConfig(["--help"]).help).toBe(true);
  });

  it("shows durations and sizes in the help as people write them, and each default reads back", () => {
    const help = helpText();
    expect(help).toContain("--ttl D");
    expect(help).toMatch(/--ttl D +how long an undelivered message is kept \[default: 7d\]/);
    expect(help).toMatch(/--max-ttl D +.*\[default: 30d\]/);
    expect(help).toMatch(/--redis-aof-rewrite D +.*\[default: 1h\]/);
    expect(help).toMatch(/--max-message-size SIZE +.*\[default: 64KiB\]/);
    expect(help).toMatch(/--mailbox-max-bytes SIZE +.*\[default: 64MiB\]/);
    for (const raw of ["604800", "2592000", "3600", "65536", "67108864", "4194304"]) {
      expect(help).not.toContain(`default: ${raw}]`);
    }
    // Whatever the help shows as a default, typed back in, gives that default.
    for (const o of OPTIONS) {
      const shown = new RegExp(`^  ${o.flag} \\S+ +.*\\[default: ([^\\]]+)\\]$`, "m").exec(help)?.[1];
      if (o.kind === "switch") {
        // A switch is off unless named: it shows no default and takes no value.
        expect(shown, o.flag).toBeUndefined();
        expect(DEFAULTS[o.key], o.flag).toBe(false);
        continue;
      }
      if (DEFAULTS[o.key] === null) {
        expect(shown, o.flag).toBeUndefined();
        continue;
      }
      expect(shown, o.flag).toBeDefined();
      const { config } = loadConfig([o.flag, shown!]);
      expect(config[o.key], o.flag).toEqual(DEFAULTS[o.key]);
    }
  });

  it("formats durations and sizes so that they parse back to the same number", () => {
    expect([formatDuration(604800), formatDuration(90), formatDuration(120), formatDuration(1)]).toEqual([
      "7d",
      "90s",
      "2m",
      "1s",
    ]);
    expect([formatSize(65536), formatSize(4 * 1024 ** 2), formatSize(1000), formatSize(1536)]).toEqual([
      "64KiB",
      "4MiB",
      "1000",
      "1536",
    ]);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 ** 12 }), (n) => {
        expect(parseDuration(formatDuration(n))).toBe(n);
        expect(parseSize(formatSize(n))).toBe(n);
      }),
    );
  });

  it("answers --help and --version even when the rest of the configuration is wrong", () => {
    expect(loadConfig(["--help", "--port", "x"], { PARLEY_RELAY_TTL: "soon" }).help).toBe(true);
    expect(loadConfig(["--version", "--nonsense"]).version).toBe(true);
    expect(problems(["--port", "x"], { PARLEY_RELAY_TTL: "soon" })).toHaveLength(2);
  });

  it("refuses a --max-message-size below the largest envelope of the protocol, unless told it is for tests", () => {
    const below = String(MAX_ENVELOPE_LENGTH - 1);
    expect(problems(["--max-message-size", below])).toEqual([
      `--max-message-size: at least ${MAX_ENVELOPE_LENGTH} bytes, the largest envelope a client sends (an Accept, PROTOCOL.md §8.4); below that, invitations could never be accepted`,
    ]);
    expect(loadConfig(["--max-message-size", String(MAX_ENVELOPE_LENGTH)]).config.maxMessageBytes).toBe(
      MAX_ENVELOPE_LENGTH,
    );
    // The switch, in each of its forms; it takes no value unless given one with "=".
    for (const [argv, env] of [
      [["--max-message-size", "2048", "--unsafe-small-messages"], {}],
      [["--unsafe-small-messages", "--max-message-size", "2048"], {}],
      [["--max-message-size", "2048", "--unsafe-small-messages=true"], {}],
      [["--max-message-size", "2048"], { PARLEY_RELAY_UNSAFE_SMALL_MESSAGES: "1" }],
    ] as [string[], Record<string, string>][]) {
      expect(loadConfig(argv, env).config, argv.join(" ")).toMatchObject({
        maxMessageBytes: 2048,
        unsafeSmallMessages: true,
      });
    }
    expect(problems(["--max-message-size", "2048", "--unsafe-small-messages=false"])).toHaveLength(1);
    expect(problems(["--unsafe-small-messages=maybe"])).toEqual([
      '--unsafe-small-messages: "maybe" is not true or false',
    ]);
  });

  it("refuses readable files that are not a PEM certificate or key, naming each", () => {
    const notPem = join(tmpdir(), `parley-not-pem-${process.pid}`);
    writeFileSync(notPem, "just some text\n");
    expect(problems(["--tls-cert", notPem, "--tls-key", notPem])).toEqual([
      expect.stringMatching(new RegExp(`^--tls-cert: ${notPem} is not a PEM certificate \\(.+\\)$`)),
      expect.stringMatching(new RegExp(`^--tls-key: ${notPem} is not a PEM private key \\(.+\\)$`)),
    ]);
  });

  it("parses --trust-proxy: blocks, single addresses, loopback, none; and says what is wrong", () => {
    expect(DEFAULTS.trustProxy).toEqual(["127.0.0.0/8", "::1/128"]);
    expect(loadConfig(["--trust-proxy", "10.0.0.0/8, 192.0.2.7,fd00::/8"]).config.trustProxy).toEqual([
      "10.0.0.0/8",
      "192.0.2.7/32",
      "fd00::/8",
    ]);
    expect(loadConfig(["--trust-proxy", "loopback"]).config.trustProxy).toEqual(DEFAULTS.trustProxy);
    expect(loadConfig(["--trust-proxy", "none"]).config.trustProxy).toEqual([]);
    expect(problems(["--trust-proxy", "10.0.0.0/33"])).toEqual([
      '--trust-proxy: "10.0.0.0/33" is not an address or a CIDR block such as 10.0.0.0/8 or fd00::/8, or none, or loopback',
    ]);
    expect(problems(["--trust-proxy", "proxy.example"])).toHaveLength(1);
  });

  it("checks the connection and buffer limits against the message size", () => {
    expect(problems(["--max-receive-buffer", "64KiB"])).toEqual([
      expect.stringMatching(/^--max-receive-buffer: at least \d+/),
    ]);
    expect(problems(["--max-send-buffer", "1MiB"])).toEqual([
      "--max-send-buffer: must be at least --max-outstanding-bytes",
    ]);
    expect(problems(["--handshake-timeout", "1h"])).toEqual(["--handshake-timeout: at most 5m"]);
  });

  it("states limits in the units people write", () => {
    expect(problems(["--ttl", "40d"])).toEqual(["--ttl: 40d is longer than --max-ttl (30d)"]);
    expect(problems(["--sweep-interval", "2d"])).toEqual(["--sweep-interval: at most 1d"]);
  });
});

describe("file (blob) settings", () => {
  it("defaults: a 100 MiB file sealed, half of --max-storage for all files, 8 MiB/s uploads", () => {
    const { config } = loadConfig([]);
    expect(config).toMatchObject({
      maxBlobBytes: 1600 * 65552,
      maxBlobStorageBytes: null,
      uploadBytesPerSecond: 8 * 1024 * 1024,
    });
    expect(blobStorageCap(config, 1000)).toBe(500);
    expect(blobStorageCap({ maxBlobStorageBytes: 7 }, 1000)).toBe(7);
    const set = loadConfig([
      "--max-blob-bytes",
      "1MiB",
      "--max-blob-storage",
      "2MiB",
      "--upload-rate",
      "1MiB",
    ]);
    expect(set.config).toMatchObject({
      maxBlobBytes: 1048576,
      maxBlobStorageBytes: 2097152,
      uploadBytesPerSecond: 1048576,
    });
    expect(loadConfig([], { PARLEY_RELAY_UPLOAD_RATE: "64KiB" }).config.uploadBytesPerSecond).toBe(65536);
  });

  it("refuses a file cap below one chunk, a storage cap below the largest file, an upload rate below 1 KiB/s", () => {
    expect(problems(["--max-blob-bytes", "1000"])).toEqual([
      "--max-blob-bytes: at least 65552 bytes, one sealed chunk",
    ]);
    expect(problems(["--max-blob-bytes", "2MiB", "--max-blob-storage", "1MiB"])).toEqual([
      "--max-blob-storage: smaller than --max-blob-bytes, so the largest file could never be stored",
    ]);
    expect(problems(["--upload-rate", "100"])).toEqual(["--upload-rate: at least 1KiB (per second)"]);
    expect(
      problems(["--max-outstanding-bytes", "100KiB", "--max-message-size", String(MAX_ENVELOPE_LENGTH)]),
    ).toEqual([
      "--max-outstanding-bytes: must be at least 131252 bytes, two file chunks (below that only with --unsafe-small-messages)",
    ]);
  });

  it("§8.2 the WebSocket message limit admits a full putChunk (65 626 bytes) whatever --max-message-size is", () => {
    expect(MAX_PUT_CHUNK_FRAME).toBe(65626);
    expect(maxPayload({ maxMessageBytes: MAX_ENVELOPE_LENGTH })).toBe(65626);
    expect(maxPayload({ maxMessageBytes: 65536 })).toBe(65626);
    expect(maxPayload({ maxMessageBytes: 1024 * 1024 })).toBe(1024 * 1024 + 86);
  });
});
