// Explains a failed `pnpm install` in a few lines: what failed, why, and what to do, instead of
// the wall of node-gyp output (which goes to a log file). Pure, text in and text out, so it is
// tested against recorded outputs of real failed installs (tests/fixtures/install/).

/**
 * The package whose install script failed, from pnpm's `<path> <phase>: Failed` line (append-only
 * reporter): `.../node_modules/better-sqlite3 install: Failed`, or a workspace project's directory.
 */
function failedScript(lines) {
  for (const line of lines) {
    const m = /^(\S+) (preinstall|install|postinstall): Failed$/.exec(line.trim());
    if (!m) continue;
    const path = m[1];
    const at = path.lastIndexOf("node_modules/");
    const name = at >= 0 ? path.slice(at + "node_modules/".length) : path.replace(/^\.\.\.\//, "");
    return { path, name, phase: m[2] };
  }
  return null;
}

/** The version from a `.pnpm/NAME@VERSION/` path in the output, if there is one. */
function versionOf(name, text) {
  // pnpm writes a scoped package @scope/name as @scope+name.
  const key = name.replace("/", "+").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`\\.pnpm/${key}@([^/\\s_(]+)`).exec(text);
  return m ? m[1] : null;
}

const hostOf = (url) => /^https?:\/\/([^/]+)/.exec(url)?.[1] ?? url;

/** Why a native build failed, with what to do; null when the output does not say. */
function nativeCause(text, ctx) {
  const retry = `then \`${ctx.retry}\` again`;
  const prebuilt = /prebuild-install warn install (.+)/.exec(text);
  const noPrebuilt = prebuilt ? `no prebuilt binary could be downloaded (${prebuilt[1].trim()}), and ` : "";
  const headersFetch =
    /gyp http fetch GET (\S*headers\.tar\.gz) attempt \d+ failed with (\S+)/.exec(text) ??
    (/network connectivity/.test(text) && /gyp http GET \S*headers\.tar\.gz/.test(text)
      ? [null, "https://nodejs.org/", "a network error"]
      : null);
  if (headersFetch) {
    const hints = [];
    if (ctx.localHeaders) {
      hints.push(
        `Node's headers are already on this machine, in ${ctx.localHeaders}/include/node: run \`npm config set nodedir ${ctx.localHeaders}\`, ${retry}.`,
      );
    } else {
      hints.push(
        `Install Node's headers (they come with the official Node.js tarballs and nvm; Debian/Ubuntu's nodejs: \`sudo apt install libnode-dev\`), point npm at them with \`npm config set nodedir DIR\` (DIR holds include/node/node.h), ${retry}.`,
      );
    }
    hints.push(
      `Or let this machine reach https://nodejs.org (behind a proxy: \`npm config set proxy URL\`), ${retry}.`,
    );
    return {
      cause: `${noPrebuilt}node-gyp could not download the Node.js headers to compile it (${hostOf(headersFetch[1])}: ${headersFetch[2]}).`,
      hints,
    };
  }
  const missingDir =
    /gyp: (\S+)\/common\.gypi not found/.exec(text) ??
    /fatal error: (?:node|node_api|v8|uv)\.h: No such file or directory/.exec(text);
  if (missingDir) {
    const where = ctx.nodedir ? `npm's nodedir is ${ctx.nodedir}` : "npm's nodedir";
    const fix = ctx.localHeaders
      ? `\`npm config set nodedir ${ctx.localHeaders}\` (Node's headers are in ${ctx.localHeaders}/include/node)`
      : "`npm config delete nodedir` (node-gyp then downloads them), or set it to a directory holding include/node/node.h";
    return {
      cause: `${noPrebuilt}node-gyp found no Node.js headers where it was told to look (${where}).`,
      hints: [`Check it with \`npm config get nodedir\` and fix it: ${fix}, ${retry}.`],
    };
  }
  if (/Could not find any Python installation/.test(text)) {
    return {
      cause: `${noPrebuilt}node-gyp needs Python 3 to compile it, and found none.`,
      hints: [
        `Install python3, make and a C++ compiler (Debian/Ubuntu: \`sudo apt install python3 make g++\`; macOS: \`xcode-select --install\`), ${retry}.`,
      ],
    };
  }
  if (/not found: make\b/.test(text) || /spawn make ENOENT/.test(text)) {
    return {
      cause: `${noPrebuilt}node-gyp needs \`make\` to compile it, and found none.`,
      hints: [`Install make and a C++ compiler (Debian/Ubuntu: \`sudo apt install make g++\`), ${retry}.`],
    };
  }
  const compiler =
    /(?:^|\s|make(?:\[\d+\])?: )(cc|c\+\+|g\+\+|gcc|clang|clang\+\+): (?:No such file or directory|not found|command not found)/m.exec(
      text,
    );
  if (compiler) {
    return {
      cause: `${noPrebuilt}there is no C/C++ compiler (\`${compiler[1]}\` was not found).`,
      hints: [
        `Install one (Debian/Ubuntu: \`sudo apt install g++ make python3\`; Fedora: \`sudo dnf install gcc-c++ make\`; macOS: \`xcode-select --install\`), ${retry}.`,
      ],
    };
  }
  const compileError = /^(\S+:\d+:\d+: (?:fatal )?error: .+)$/m.exec(text);
  if (compileError) {
    return {
      cause: `${noPrebuilt}the compiler failed: ${compileError[1].trim()}`,
      hints: [`An older compiler may not support this Node.js; check \`g++ --version\`, ${retry}.`],
    };
  }
  if (/gyp ERR!/.test(text)) {
    return {
      cause: `${noPrebuilt}node-gyp failed (the log says how).`,
      hints: [
        `Compiling needs python3, make, a C++ compiler and Node's headers (\`npm config get nodedir\` says where npm looks for them), ${retry}.`,
      ],
    };
  }
  return null;
}

/**
 * Explains a failed install. `output` is everything the install printed; `ctx` says how to refer
 * to things: `retry` (the command to run again, e.g. "npm start"), `logPath` (where the full output
 * is), `exitCode`, `nodedir` (npm's setting, if any), `localHeaders` (a directory whose
 * include/node holds this Node's headers, if one was found). Returns the lines to print.
 */
export function explainInstallFailure(output, ctx) {
  const text = output.replace(/\r/g, "");
  const lines = text.split("\n");
  const retry = `then \`${ctx.retry}\` again`;
  let what;
  let hints;
  const script = failedScript(lines);
  if (script) {
    const prefix = `${script.path} ${script.phase}: `;
    const own = lines
      .filter((l) => l.startsWith(prefix))
      .map((l) => l.slice(prefix.length))
      .join("\n");
    const version = versionOf(script.name, text);
    const pkg = version ? `${script.name} ${version}` : script.name;
    const native = nativeCause(own || text, ctx);
    if (native) {
      what = `${pkg}, a native addon compiled on install, could not be built: ${native.cause}`;
      hints = native.hints;
    } else {
      const tail = own
        .split("\n")
        .filter((l) => l.trim() !== "" && l.trim() !== "Failed")
        .slice(-3);
      what = `the ${script.phase} script of ${pkg} failed${tail.length > 0 ? `; it ended with:\n    ${tail.join("\n    ")}` : "."}`;
      hints = [`Read the log below for the whole of its output; fix what it names, ${retry}.`];
    }
  } else {
    const request = /request to (https?:\/\/[^/\s]+)\S* failed, reason: (.+)/.exec(text);
    const offline = /ERR_PNPM_NO_OFFLINE_(?:META|TARBALL)/.test(text);
    if (request || offline) {
      what = request
        ? `the package registry could not be reached (${request[1]}: ${request[2].trim()}).`
        : "a package is not in the local store and --offline forbids downloading it.";
      hints = [
        `Check the network, the registry (\`npm config get registry\`) and any proxy (\`npm config get proxy\`, HTTPS_PROXY), ${retry}.`,
      ];
    } else if (/ERR_PNPM_OUTDATED_LOCKFILE/.test(text)) {
      what =
        "pnpm-lock.yaml does not match the package.json files, and a frozen install (CI) may not change it.";
      hints = [
        "Run `npm run setup` outside CI to update the lockfile and commit it, or undo the package.json change.",
      ];
    } else if (/ERR_PNPM_UNSUPPORTED_ENGINE|Unsupported engine/.test(text)) {
      what = `this Node.js (${ctx.nodeVersion ?? process.version}) is older than a package needs.`;
      hints = [`Install Node.js 20.19 or later, ${retry}.`];
    } else if (/\bENOSPC\b/.test(text)) {
      what = "the disk is full.";
      hints = [`Free some space (the pnpm store is at \`npx pnpm store path\`), ${retry}.`];
    } else if (/\b(EACCES|EPERM)\b/.test(text)) {
      const path = /\b(?:EACCES|EPERM)\b[^'\n]*'([^']+)'/.exec(text);
      what = `permission denied${path ? ` on ${path[1]}` : ""}.`;
      hints = [`Make the checkout and its node_modules writable by you (not root-owned), ${retry}.`];
    } else {
      const tail = lines.filter((l) => l.trim() !== "").slice(-3);
      what = `pnpm exited with status ${ctx.exitCode}; it ended with:\n    ${tail.map((l) => l.trim()).join("\n    ")}`;
      hints = [`Read the log below; fix what it names, ${retry}.`];
    }
  }
  return [
    `Installing dependencies failed: ${what}`,
    ...hints.map((h) => `  - ${h}`),
    `  The full output is in ${ctx.logPath}`,
  ];
}
