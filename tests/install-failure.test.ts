// A failed install ends with a few lines that say what failed and what to do, not node-gyp's
// output: explainInstallFailure() against the recorded output of real failed installs of this
// repository (tests/fixtures/install/, each made by breaking one thing: no headers, no Python, no
// compiler, no registry), and scripts/pnpm.mjs running a real pnpm install that fails.
import { spawn } from "node:child_process";
import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { explainInstallFailure, type InstallFailureContext } from "../scripts/install-failure.mjs";
import { cleanup, finished, newDir, ROOT } from "./client-helpers.js";

const fixture = (name: string) => readFile(join(ROOT, "tests/fixtures/install", `${name}.txt`), "utf8");
const ctx: InstallFailureContext = {
  retry: "npm start",
  logPath: "/tmp/parley-install-x/install.log",
  exitCode: 1,
  nodedir: null,
  localHeaders: null,
};

function explained(output: string, extra: Partial<InstallFailureContext> = {}): string {
  const lines = explainInstallFailure(output, { ...ctx, ...extra });
  // A handful of lines, none of them node-gyp's, ending with where the whole output is.
  expect(lines.length).toBeLessThanOrEqual(6);
  expect(lines.at(-1)).toBe(`  The full output is in ${ctx.logPath}`);
  const text = lines.join("\n");
  expect(text).not.toMatch(/gyp (ERR|info)!?/);
  return text;
}

describe("explaining a failed install", () => {
  it("headers that cannot be downloaded: names the package, the cause, and headers already on disk", async () => {
    const output = await fixture("headers-unreachable");
    const text = explained(output, { localHeaders: "/usr" });
    expect(text).toMatch(/^Installing dependencies failed: better-sqlite3 12\.11\.1, a native addon/);
    expect(text).toContain(
      "node-gyp could not download the Node.js headers to compile it (nodejs.org: ENOTFOUND)",
    );
    expect(text).toContain("no prebuilt binary could be downloaded (getaddrinfo ENOTFOUND github.com)");
    expect(text).toContain("`npm config set nodedir /usr`, then `npm start` again");
    // Without headers on this machine, it says how to get them.
    expect(explained(output)).toMatch(/npm config set nodedir DIR/);
  });

  it("a nodedir without headers: says which setting, and how to check and fix it", async () => {
    const text = explained(await fixture("nodedir-missing"), {
      nodedir: "/nonexistent",
      localHeaders: "/usr",
    });
    expect(text).toContain("no Node.js headers where it was told to look (npm's nodedir is /nonexistent)");
    expect(text).toContain("`npm config get nodedir`");
    expect(text).toContain("`npm config set nodedir /usr`");
  });

  it("no Python, no compiler: says what to install", async () => {
    expect(explained(await fixture("no-python"))).toMatch(
      /needs Python 3.*\n.*sudo apt install python3 make g\+\+/,
    );
    expect(explained(await fixture("no-compiler"))).toMatch(
      /no C\/C\+\+ compiler \(`cc` was not found\).*\n.*sudo apt install g\+\+/,
    );
  });

  it("an unreachable registry: names it and the settings to check", async () => {
    const text = explained(await fixture("registry-unreachable"), { retry: "npm test" });
    expect(text).toContain(
      "the package registry could not be reached (http://127.0.0.1:9: connect ECONNREFUSED",
    );
    expect(text).toContain("`npm config get registry`");
    expect(text).toContain("then `npm test` again");
  });

  it("anything else: pnpm's last lines, not a guess", () => {
    const text = explained("Progress: resolved 3\n ERR_PNPM_SOMETHING  Something new went wrong\n", {
      exitCode: 7,
    });
    expect(text).toContain("pnpm exited with status 7; it ended with:");
    expect(text).toContain("ERR_PNPM_SOMETHING  Something new went wrong");
  });
});

describe("scripts/pnpm.mjs install", () => {
  afterAll(cleanup);

  /** A workspace with this repository's set-up scripts and one package whose install script runs `script`. */
  async function workspace(script: string): Promise<string> {
    const dir = await newDir("parley-install-");
    await mkdir(join(dir, "scripts"));
    for (const f of ["setup.mjs", "pnpm.mjs", "install-failure.mjs"]) {
      await cp(join(ROOT, "scripts", f), join(dir, "scripts", f));
    }
    const { packageManager } = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8"));
    await writeFile(join(dir, "package.json"), JSON.stringify({ name: "w", private: true, packageManager }));
    await writeFile(join(dir, "pnpm-workspace.yaml"), "packages:\n  - native-addon\n");
    await mkdir(join(dir, "native-addon"));
    await writeFile(
      join(dir, "native-addon", "package.json"),
      JSON.stringify({ name: "native-addon", version: "1.0.0", scripts: { install: "node build.js" } }),
    );
    await writeFile(join(dir, "native-addon", "build.js"), script);
    return dir;
  }

  function run(dir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && k !== "CI" && !k.startsWith("npm_")) env[k] = v;
    }
    env.npm_lifecycle_event = "start";
    const child = spawn(process.execPath, ["scripts/pnpm.mjs", "install", "--offline"], {
      cwd: dir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    return finished(child);
  }

  it("shows progress, keeps a build's output in a log, and ends a failure with what to do", {
    timeout: 120_000,
  }, async () => {
    // A build that fails as node-gyp does without Python: its real output, then exit 1.
    const recorded = (await fixture("no-python"))
      .split("\n")
      .filter((l) => l.startsWith(".../node_modules/better-sqlite3 install: ") && !l.endsWith(": Failed"))
      .map((l) => l.slice(".../node_modules/better-sqlite3 install: ".length));
    expect(recorded.length).toBeGreaterThan(20);
    const dir = await workspace(
      `for (const line of ${JSON.stringify(recorded)}) console.error(line);\nprocess.exit(1);\n`,
    );
    const r = await run(dir);
    const all = `${r.stdout}${r.stderr}`;
    expect(r.code, all).not.toBe(0);
    // The build's start and end are shown, its output is not.
    expect(all).toContain("native-addon install$ node build.js");
    expect(all).toContain("native-addon install: Failed");
    expect(all).not.toContain("gyp ERR!");
    // The end says what failed, what to do, and where everything is.
    const tail = r.stderr.trimEnd().split("\n").slice(-3);
    expect(tail[0]).toMatch(
      /^Installing dependencies failed: native-addon, a native addon compiled on install, could not be built: .*node-gyp needs Python 3 to compile it, and found none\.$/,
    );
    expect(tail[1]).toMatch(/Install python3, make and a C\+\+ compiler .*then `npm start` again\.$/);
    const log = /^ {2}The full output is in (.+)$/.exec(tail[2]!)?.[1];
    expect(log, r.stderr).toBeDefined();
    const logged = await readFile(log!, "utf8");
    expect(logged).toContain("gyp ERR! stack Error: Could not find any Python installation to use");
    expect(logged).toContain("native-addon install: Failed");
  });

  it("a successful install shows the build's start and end only, and leaves no log behind", {
    timeout: 120_000,
  }, async () => {
    const dir = await workspace('console.log("gyp info it worked if it ends with ok");\n');
    const r = await run(dir);
    const all = `${r.stdout}${r.stderr}`;
    expect(r.code, all).toBe(0);
    expect(all).toContain("native-addon install$ node build.js");
    expect(all).toContain("native-addon install: Done");
    expect(all).not.toContain("gyp info");
    expect(all).not.toContain("The full output is in");
  });
});
