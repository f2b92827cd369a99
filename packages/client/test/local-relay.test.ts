// The personal relay (ensureLocalRelay) as a real detached process: what it inherits from the client
// that started it. It outlives that client and every other identity reuses it, so it gets a minimal
// environment: never the passphrase, nor anything else of the caller's shell.
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { ensureLocalRelay, LOCAL_RELAY_ENV, localRelayPid } from "../src/local-relay.js";
import { cleanupLive, freePort, kill, onCleanup, tmp } from "./live-helpers.js";

afterEach(cleanupLive);

describe("the personal relay", () => {
  it("starts with a minimal environment: no PARLEY_PASSPHRASE, nothing of the caller's but what it needs", {
    timeout: 60_000,
  }, async () => {
    const passphrase = `pass-${Math.random().toString(36).slice(2)}`;
    const env = {
      ...process.env,
      XDG_DATA_HOME: tmp(),
      PARLEY_LOCAL_RELAY_PORT: String(await freePort()),
      PARLEY_PASSPHRASE: passphrase,
      // Settings of a public relay in the same shell are not the personal relay's.
      PARLEY_RELAY_STORAGE: "memory",
      SOME_API_TOKEN: "not for the relay",
    };
    onCleanup(async () => {
      const pid = localRelayPid(env);
      if (pid !== null) await kill(pid);
    });
    const { url, started } = await ensureLocalRelay(env);
    expect(started).toBe(true);
    const pid = localRelayPid(env);
    expect(pid).not.toBeNull();

    // What the process was started with, as the kernel keeps it (readable by the same user).
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
    expect(environ.join("\n")).not.toContain(passphrase);
    const names = environ.map((e) => e.slice(0, e.indexOf("=")));
    expect(names).not.toContain("PARLEY_PASSPHRASE");
    expect(names.filter((n) => !LOCAL_RELAY_ENV.includes(n) && n !== "PARLEY_RELAY_LOG_LEVEL")).toEqual([]);
    expect(environ).toContain("PARLEY_RELAY_LOG_LEVEL=warn");
    if (process.env.PATH) expect(environ).toContain(`PATH=${process.env.PATH}`);

    // And it works: it answers, keeping its data in SQLite as always.
    const port = new URL(url).port;
    const statement = (await (await fetch(`http://127.0.0.1:${port}/transparency`)).json()) as {
      service: string;
    };
    expect(statement.service).toBe("parley-relay");
    expect(JSON.stringify(statement)).toMatch(/sqlite/i);
  });
});
