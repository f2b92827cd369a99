#!/usr/bin/env node
// Lists every MUST / MUST NOT sentence of packages/protocol/PROTOCOL.md with its section, and
// whether any test's name mentions that section ("§4.2"): `npm run spec:musts`. Prints the ones
// without such a test and their count. `--all` prints the covered ones too. `--strict` (run by
// `npm run check`, so by CI) exits 1 when a MUST has no test, or when no MUST is found at all (a
// parser that broke would otherwise pass). `--spec FILE` reads another specification (the script's
// own test uses it).
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SPEC = join(ROOT, "packages/protocol/PROTOCOL.md");
const TEST_DIRS = ["packages/protocol/test", "packages/relay/test", "packages/client/test", "tests"];

/** The MUST sentences of the spec, each with the number of the section it is in ("4.2"). */
function musts(text) {
  const found = [];
  let section = "";
  let inCode = false;
  let paragraph = [];
  const flush = () => {
    const joined = paragraph.join(" ").replace(/\s+/g, " ").trim();
    paragraph = [];
    if (!joined) return;
    // Sentences end at . ! or ? followed by a space and a capital, a backtick, a star or a digit.
    for (const sentence of joined.split(/(?<=[.!?])\s+(?=[A-Z`*(0-9])/)) {
      // MUST or MUST NOT followed by a verb: a requirement. The key word named in a list ("MUST,
      // MUST NOT, …", "MUST NOT and MAY", "never MUST.") or in a title ("MUST-reject list") is not one.
      if (/\bMUST (?:NOT )?(?!(?:and|or|nor)\b)[a-z]/.test(sentence)) found.push({ section, sentence });
    }
  };
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) {
      flush();
      inCode = !inCode;
      continue;
    }
    if (inCode) continue;
    const heading = /^#{2,4} (\d+(?:\.\d+)*)\b/.exec(line);
    if (heading) {
      flush();
      section = heading[1];
      continue;
    }
    // A blank line, a list item or a table row starts a new paragraph.
    if (line.trim() === "" || /^\s*([-*]|\d+\.) /.test(line) || line.startsWith("|")) flush();
    if (line.trim() !== "") paragraph.push(line.startsWith("|") ? line.replace(/\|/g, " ") : line);
    if (line.startsWith("|")) flush();
  }
  flush();
  return found;
}

function testFiles(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" ? [] : testFiles(path);
    return /\.test\.tsx?$/.test(e.name) ? [path] : [];
  });
}

/** The names of every test and describe block, with the file they are in. */
function testNames() {
  const names = [];
  for (const dir of TEST_DIRS) {
    for (const file of testFiles(join(ROOT, dir))) {
      const source = readFileSync(file, "utf8");
      for (const m of source.matchAll(
        /\b(?:it|test|describe)(?:\.\w+)*\(\s*(["'`])((?:\\.|(?!\1)[^\\])*)\1/g,
      )) {
        names.push({ name: m[2], file: relative(ROOT, file) });
      }
    }
  }
  return names;
}

/** Does a test name mention §<section> itself (not a longer number such as §4.21 for §4.2)? */
const mentions = (name, section) => new RegExp(`§${section.replace(/\./g, "\\.")}(?![.]?\\d)`).test(name);

let options;
try {
  ({ values: options } = parseArgs({
    options: { all: { type: "boolean" }, strict: { type: "boolean" }, spec: { type: "string" } },
  }));
} catch (e) {
  console.error(
    `spec-musts: ${e.message}\nusage: node scripts/spec-musts.mjs [--all] [--strict] [--spec FILE]`,
  );
  process.exit(2);
}
const { all = false, strict = false, spec = SPEC } = options;
const sentences = musts(readFileSync(spec, "utf8"));
const names = testNames();
const missing = [];
for (const { section, sentence } of sentences) {
  const tests = names.filter((n) => section && mentions(n.name, section));
  if (tests.length === 0) missing.push({ section, sentence });
  if (all || tests.length === 0) {
    const where = tests.length ? `tested: ${tests.map((t) => `${t.file}: ${t.name}`).join("; ")}` : "NO TEST";
    console.log(`§${section || "?"}  ${where}\n    ${sentence}\n`);
  }
}
const sections = new Set(missing.map((m) => m.section));
console.log(
  `${sentences.length} MUST sentences in ${relative(ROOT, spec).startsWith("..") ? spec : relative(ROOT, spec)}; ${missing.length} in ${sections.size} sections (${[...sections].map((s) => `§${s}`).join(", ")}) have no test naming their section.`,
);
if (strict && sentences.length === 0) {
  console.error(
    "spec:musts --strict: no MUST sentence found; the specification or this script's parser changed",
  );
  process.exit(1);
}
if (strict && missing.length > 0) {
  console.error(
    `spec:musts --strict: ${missing.length} MUST sentence(s) have no test naming their section; write a test whose name contains the section (e.g. "§4.2 …")`,
  );
  process.exit(1);
}
