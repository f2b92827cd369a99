// The shipped reverse-proxy configurations (deploy/nginx.conf, deploy/Caddyfile), run for real in
// front of the real relay: the relay's per-source limits count each client's address, which the
// proxy passes in X-Forwarded-For (replacing whatever the client sent there). Only ports,
// certificates and paths are changed from the files as shipped.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { http, type RelayProcess, startRelay, until } from "./helpers.js";
import { freePort } from "./redis-server.js";

const DEPLOY = new URL("../deploy/", import.meta.url);
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A self-signed certificate for relay.example.org, with openssl (as an operator's test would). */
function certificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
    ...["-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=relay.example.org"],
  ]);
  return { cert, key };
}

/** Starts a proxy process and waits until its HTTPS port answers /livez through to the relay. */
async function proxy(
  command: string,
  args: string[],
  env: Record<string, string>,
  port: number,
): Promise<void> {
  const proc: ChildProcess = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout!.on("data", (d) => {
    output += d;
  });
  proc.stderr!.on("data", (d) => {
    output += d;
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once("exit", () => resolve());
        proc.kill("SIGTERM");
      }),
  );
  await until(
    `${command} to answer on ${port}`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`${command} exited ${proc.exitCode}:\n${output}`);
      return (await get(port, "/livez").catch(() => 0)) === 200;
    },
    15_000,
  );
}

/** GET over TLS to the proxy (its certificate is self-signed). */
function get(port: number, path: string): Promise<number> {
  return fetchStatus(`https://127.0.0.1:${port}${path}`);
}

async function fetchStatus(url: string): Promise<number> {
  const { request } = await import("node:https");
  return new Promise((resolve, reject) => {
    const options = {
      rejectUnauthorized: false,
      servername: "relay.example.org",
      headers: { Host: "relay.example.org" },
    };
    const req = request(url, options, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once("error", reject);
    req.end();
  });
}

/** Opens a WebSocket through the proxy from `from`; resolves "open" or the HTTP status of a refusal. */
function open(
  port: number,
  from: string,
  headers: Record<string, string> = {},
): Promise<{ ws?: WebSocket; result: string }> {
  return new Promise((resolve) => {
    // As a client of relay.example.org would: its name in SNI and in Host (Caddy routes by it).
    const options = {
      localAddress: from,
      rejectUnauthorized: false,
      servername: "relay.example.org",
      headers: { Host: "relay.example.org", ...headers },
    };
    const ws = new WebSocket(`wss://127.0.0.1:${port}/`, options as WebSocket.ClientOptions);
    ws.once("open", () => {
      cleanups.push(() => ws.terminate());
      resolve({ ws, result: "open" });
    });
    ws.once("unexpected-response", (_req, res) => {
      res.resume();
      ws.terminate();
      resolve({ result: `HTTP ${res.statusCode}` });
    });
    ws.once("error", (e) => resolve({ result: `error ${e.message}` }));
  });
}

async function relayBehindProxy(): Promise<RelayProcess> {
  // The proxy connects from 127.0.0.1; the test's clients come from 127.0.0.2 and up, which a
  // real deployment's clients do not share with the proxy: so trust exactly the proxy's address.
  const r = await startRelay([
    ...["--storage", "memory", "--max-connections-per-source", "2", "--trust-proxy", "127.0.0.1"],
  ]);
  cleanups.push(async () => {
    await r.stop();
  });
  return r;
}

/** Two connections from 127.0.0.2 are taken, the third refused; 127.0.0.3 still connects. */
async function perSourceLimits(port: number, r: RelayProcess): Promise<void> {
  const first = await Promise.all([open(port, "127.0.0.2"), open(port, "127.0.0.2")]);
  expect(first.map((o) => o.result)).toEqual(["open", "open"]);
  expect((await open(port, "127.0.0.2")).result).toBe("HTTP 429");
  // A client that claims to be someone else in X-Forwarded-For is still itself: the proxy replaces
  // the header.
  expect((await open(port, "127.0.0.2", { "X-Forwarded-For": "203.0.113.9" })).result).toBe("HTTP 429");
  expect((await open(port, "127.0.0.3")).result).toBe("open");
  // The relay never writes a client's address anywhere.
  expect(r.output()).not.toMatch(/127\.0\.0\.[23]|203\.0\.113\.9/);
  expect((await http(r.port, "/livez")).status).toBe(200);
}

describe("the shipped proxy configurations in front of the relay", () => {
  it("nginx: per-source limits count the client's address, passed in X-Forwarded-For", async () => {
    const dir = mkdtempSync(join(tmpdir(), "parley-nginx-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const r = await relayBehindProxy();
    const { cert, key } = certificate(dir);
    const [http80, https443] = [await freePort(), await freePort()];
    const conf = readFileSync(new URL("nginx.conf", DEPLOY), "utf8")
      .replace(/^user .*;$/m, "")
      .replace("pid /run/nginx.pid;", `pid ${join(dir, "nginx.pid")};`)
      .replaceAll("listen 80;", `listen 127.0.0.1:${http80};`)
      .replaceAll("listen [::]:80;", "")
      .replaceAll("listen 443 ssl;", `listen 127.0.0.1:${https443} ssl;`)
      .replaceAll("listen [::]:443 ssl;", "")
      .replace("/etc/letsencrypt/live/relay.example.org/fullchain.pem", cert)
      .replace("/etc/letsencrypt/live/relay.example.org/privkey.pem", key)
      .replace("server 127.0.0.1:7700;", `server 127.0.0.1:${r.port};`)
      .replace("http {", `http {\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;`);

    expect(conf).toContain("proxy_set_header X-Forwarded-For $remote_addr;");
    writeFileSync(join(dir, "nginx.conf"), conf);
    mkdirSync(join(dir, "logs"));
    await proxy(
      "nginx",
      ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr", "-g", "daemon off;"],
      {},
      https443,
    );
    await perSourceLimits(https443, r);
  });

  it("Caddy: per-source limits count the client's address, passed in X-Forwarded-For", async () => {
    const dir = mkdtempSync(join(tmpdir(), "parley-caddy-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const r = await relayBehindProxy();
    const { cert, key } = certificate(dir);
    const [http80, https443] = [await freePort(), await freePort()];
    const caddyfile = readFileSync(new URL("Caddyfile", DEPLOY), "utf8")
      .replace(
        "{\n",
        `{\n\tadmin off\n\thttp_port ${http80}\n\thttps_port ${https443}\n\tdefault_bind 127.0.0.1\n`,
      )
      .replace("relay.example.org {", `relay.example.org:${https443} {\n\ttls ${cert} ${key}`)
      .replace("reverse_proxy 127.0.0.1:7700 {", `reverse_proxy 127.0.0.1:${r.port} {`);

    expect(caddyfile).toContain("header_up X-Forwarded-For {remote_host}");
    writeFileSync(join(dir, "Caddyfile"), caddyfile);
    await proxy(
      "caddy",
      ["run", "--config", join(dir, "Caddyfile"), "--adapter", "caddyfile"],
      { HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
      https443,
    );
    await perSourceLimits(https443, r);
  });
});
