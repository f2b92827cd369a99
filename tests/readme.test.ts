// The README's commands work when pasted, in order, from the repository root after the quickstart.
// Every ```sh block is run as a person would run it, one command at a time in one shell session
// (exports and `cd` carry over), in a directory that stands for a fresh checkout (the repository's
// files, linked), with a PATH that holds no node_modules/.bin. A block marked
// `<!-- readme-test: server (...) -->` starts a server: it is started first, as in another
// terminal, must answer /readyz, and is stopped with Ctrl+C at the end (and must drain). A block marked
// `<!-- readme-test: skip (REASON) -->` is not run. The example relay address 127.0.0.1:7700
// becomes the test relay's free port, and `PARLEY1-...` the invitation code printed before it.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { http, sleep } from "../packages/relay/test/helpers.js";
import { cleanup, finished, freePort, newDir, ROOT } from "./client-helpers.js";

interface Block {
  /** 1-based line of the opening fence. */
  line: number;
  kind: "run" | "server" | "skip";
  reason: string;
  commands: string[];
}

/** The ```sh blocks of a Markdown text, with the readme-test marker on the line before each. */
function shellBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== "```sh") continue;
    const marker = /^<!-- readme-test: (skip|server) \((.+)\) -->$/.exec(lines[i - 1] ?? "");
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && lines[j] !== "```"; j++) body.push(lines[j]!);
    // One command per line; a line ending in a backslash continues on the next.
    const commands: string[] = [];
    let pending = "";
    for (const l of body) {
      if (l.endsWith("\\")) {
        pending += `${l.slice(0, -1)} `;
        continue;
      }
      const command = pending + l;
      pending = "";
      if (command.trim() !== "" && !command.trim().startsWith("#")) commands.push(command);
    }
    blocks.push({
      line: i + 1,
      kind: (marker?.[1] as "skip" | "server" | undefined) ?? "run",
      reason: marker?.[2] ?? "",
      commands,
    });
    i = j;
  }
  return blocks;
}

/** The comment a README command carries (`cmd   # comment`), if any. */
const commentOf = (command: string) => /\s{2,}# (.*)$/.exec(command)?.[1];

interface Result {
  command: string;
  code: number | null;
  stdout: string;
  stderr: string;
}

const describeResult = (r: Result) =>
  `$ ${r.command}\n→ exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

/** A shell session in `dir`: each command runs in its own bash, which picks up where the last left off. */
class Session {
  private n = 0;
  constructor(
    private readonly dir: string,
    private readonly env: Record<string, string>,
  ) {}

  async run(command: string): Promise<Result> {
    const cmdFile = join(this.dir, `.session-${++this.n}.sh`);
    await writeFile(cmdFile, `${command}\n`);
    const state = join(this.dir, ".session-state");
    const cwd = join(this.dir, ".session-cwd");
    const script = [
      `[ -f '${state}' ] && . '${state}'`,
      `[ -f '${cwd}' ] && cd "$(cat '${cwd}')"`,
      `. '${cmdFile}'`,
      "status=$?",
      `export -p > '${state}'`,
      `pwd > '${cwd}'`,
      "exit $status",
    ].join("\n");
    const child = spawn("bash", ["--norc", "--noprofile", "-c", script], {
      cwd: this.dir,
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const { code, stdout, stderr } = await finished(child);
    return { command, code, stdout, stderr };
  }
}

/** A directory standing for a fresh checkout: every top-level entry of the repository, linked. */
async function checkout(): Promise<string> {
  const dir = await newDir("parley-readme-");
  for (const entry of await readdir(ROOT)) {
    if (entry === ".git") continue;
    await symlink(join(ROOT, entry), join(dir, entry));
  }
  return dir;
}

/** A person's environment: no npm or Parley variables, and no node_modules/.bin on PATH. */
async function personEnv(): Promise<Record<string, string>> {
  const xdg = await newDir("parley-readme-xdg-");
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(npm_|PARLEY_|XDG_|INIT_CWD$|CI$|NODE_PATH$|NODE_OPTIONS$|VITEST)/.test(k))
      continue;
    env[k] = v;
  }
  env.PATH = (process.env.PATH ?? "")
    .split(":")
    .filter((p) => p !== "" && !p.includes("node_modules"))
    .join(":");
  env.XDG_DATA_HOME = join(xdg, "data");
  env.XDG_CONFIG_HOME = join(xdg, "config");
  return env;
}

interface Server {
  command: string;
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | string>;
}

function startServer(command: string, dir: string, env: Record<string, string>): Server {
  // Its own process group, so stopping it reaches npm and everything npm started.
  const proc = spawn("bash", ["--norc", "--noprofile", "-c", command], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  proc.stdout!.on("data", (d) => {
    out += d;
  });
  proc.stderr!.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<number | string>((resolve) =>
    proc.once("exit", (code, signal) => resolve(code ?? signal ?? "?")),
  );
  return { command, proc, output: () => out, exited };
}

async function untilReady(server: Server, port: number): Promise<void> {
  const deadline = Date.now() + 90_000;
  let gone = false;
  void server.exited.then(() => {
    gone = true;
  });
  for (;;) {
    if (gone) throw new Error(`\`${server.command}\` exited before it answered:\n${server.output()}`);
    try {
      if ((await http(port, "/readyz")).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`\`${server.command}\` never became ready:\n${server.output()}`);
    await sleep(100);
  }
}

const README = join(ROOT, "README.md");
const EXAMPLE_RELAY = /127\.0\.0\.1:7700\b/g;
const CODE = /PARLEY1-[A-Za-z0-9-]+/;

describe("README", () => {
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) {
      if (s.proc.exitCode === null && s.proc.signalCode === null) process.kill(-s.proc.pid!, "SIGKILL");
    }
    await cleanup();
  });

  it("marks few blocks, each with its reason", async () => {
    const blocks = shellBlocks(await readFile(README, "utf8"));
    expect(blocks.filter((b) => b.kind === "run").length).toBeGreaterThanOrEqual(1);
    for (const b of blocks) {
      expect(b.commands.length, `README.md:${b.line}`).toBeGreaterThan(0);
      if (b.kind !== "run") expect(b.reason.trim().length, `README.md:${b.line}`).toBeGreaterThan(10);
    }
  });

  it("every shell block works when pasted, in order, from the repository root", {
    timeout: 300_000,
  }, async () => {
    const blocks = shellBlocks(await readFile(README, "utf8"));
    const dir = await checkout();
    const env = await personEnv();
    const port = await freePort();
    const local = (command: string) => command.replace(EXAMPLE_RELAY, `127.0.0.1:${port}`);

    // Servers first, as in another terminal: on the free port, in place of the example's 7700.
    for (const b of blocks.filter((x) => x.kind === "server")) {
      expect(b.commands, `README.md:${b.line}: a server block is one command`).toHaveLength(1);
      const server = startServer(local(b.commands[0]!), dir, { ...env, PARLEY_RELAY_PORT: String(port) });
      servers.push(server);
      await untilReady(server, port);
      // A relative --data-dir is where the command was typed.
      const dataDir = /--data-dir (\.\/\S+)/.exec(b.commands[0]!)?.[1];
      if (dataDir) expect(existsSync(join(dir, dataDir)), `${dataDir} in the checkout`).toBe(true);
    }

    const session = new Session(dir, env);
    let code: string | undefined;
    let ran = 0;
    for (const b of blocks.filter((x) => x.kind === "run")) {
      for (const original of b.commands) {
        let command = local(original);
        const comment = commentOf(command);
        const body = comment === undefined ? command : command.slice(0, command.lastIndexOf(`# ${comment}`));
        if (body.includes("PARLEY1-...")) {
          expect(
            code,
            `README.md:${b.line}: no invitation code was printed before \`${original}\``,
          ).toBeDefined();
          command = body.replaceAll("PARLEY1-...", code!);
        }
        const r = await session.run(command);
        expect(r.code, `README.md:${b.line}:\n${describeResult(r)}`).toBe(0);
        ran++;
        code = CODE.exec(r.stdout)?.[0] ?? code;
        // A comment showing JSON (`{"type":...,...}`) is what the command prints.
        const shown = /^(\{.*),\.\.\.\}$/.exec(commentOf(original) ?? "")?.[1];
        if (shown) {
          const expected = JSON.parse(`${shown}}`) as Record<string, unknown>;
          const printed = r.stdout
            .split("\n")
            .filter((l) => l.startsWith("{"))
            .map((l) => JSON.parse(l) as Record<string, unknown>);
          expect(printed, describeResult(r)).toContainEqual(expect.objectContaining(expected));
        }
      }
    }
    expect(ran).toBeGreaterThan(0);

    // Ctrl+C in its terminal: SIGINT to its process group. The relay drains and stops (npm then
    // ends by the same signal, as npm does).
    for (const server of servers.splice(0)) {
      process.kill(-server.proc.pid!, "SIGINT");
      expect([0, "SIGINT"], server.output()).toContain(await server.exited);
      expect(server.output()).toMatch(/"msg":"stopped"/);
    }
  });

  it("relative paths given to npm start and npm run mean the directory they were typed in", {
    timeout: 180_000,
  }, async () => {
    const dir = await checkout();
    const sub = join(dir, "somewhere");
    await mkdir(sub);
    const env = { ...(await personEnv()), PARLEY_PASSPHRASE: "a passphrase", PARLEY_SCRYPT_LOG_N: "10" };
    const session = new Session(dir, env);
    for (const command of [
      "cd somewhere",
      "npm run -s parley -- --home ./from-source init --name A",
      "npm start -- --home ./bundled init --name B",
    ]) {
      const r = await session.run(command);
      expect(r.code, describeResult(r)).toBe(0);
    }
    expect(existsSync(join(sub, "from-source", "parley.db"))).toBe(true);
    expect(existsSync(join(sub, "bundled", "parley.db"))).toBe(true);
    expect(existsSync(join(ROOT, "from-source"))).toBe(false);
    expect(existsSync(join(ROOT, "bundled"))).toBe(false);
  });

  it("names only scripts and commands that exist", async () => {
    const text = await readFile(README, "utf8");
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    const scripts = new Set(Object.keys(pkg.scripts));
    const named: string[] = [];
    for (const [, inline] of text.matchAll(/`([^`\n]+)`/g)) {
      const m =
        /^(?:npm run(?: -s)?|pnpm) ([a-z][\w:-]*)/.exec(inline!) ?? /^npm (start|test)\b/.exec(inline!);
      if (m) named.push(m[1]!);
    }
    expect(named.length).toBeGreaterThan(10);
    // pnpm's own commands are not scripts.
    const missing = named.filter((n) => !scripts.has(n) && !["install", "store"].includes(n));
    expect(missing).toEqual([]);
    for (const [, bin] of text.matchAll(/`npx ([a-z][\w-]*)/g)) {
      expect(existsSync(join(ROOT, "node_modules", ".bin", bin!)), `npx ${bin}`).toBe(true);
    }
  });
});
