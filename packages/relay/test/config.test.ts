import { describe, expect, it } from "vitest";
import {
  ConfigError,
  DEFAULTS,
  helpText,
  loadConfig,
  OPTIONS,
  parseDuration,
  parseSize,
} from "../src/config.js";

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
    expect(list.join("\n")).toMatch(/--storage: "tape" must be sqlite or memory/);
    expect(list.join("\n")).toMatch(/--log-level: needs a value/);
  });

  it("checks options against each other", () => {
    expect(problems(["--ttl", "40d"])).toEqual([expect.stringMatching(/--ttl.*longer than --max-ttl/)]);
    expect(loadConfig(["--ttl", "40d", "--max-ttl", "60d"]).config.ttlSeconds).toBe(40 * 86400);
    expect(problems(["--tls-cert", "/etc/hostname"])).toEqual([
      expect.stringMatching(/give both or neither/),
    ]);
    expect(problems(["--tls-cert", "/nonexistent", "--tls-key", "/nonexistent"])).toHaveLength(2);
    expect(problems(["--mailbox-max-bytes", "1KiB"])).toEqual([
      expect.stringMatching(/smaller than --max-message-size/),
    ]);
  });

  it("documents every option with its environment variable", () => {
    const help = helpText();
    for (const o of OPTIONS) {
      expect(help).toContain(o.flag);
      expect(help).toContain(o.env);
    }
    expect(loadConfig(["--help"]).help).toBe(true);
  });
});
