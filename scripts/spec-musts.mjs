#!/usr/bin/env node
// Lists every MUST / MUST NOT sentence of packages/protocol/PROTOCOL.md with its section, and
// whether any test's name mentions that section ("§4.2"): `npm run spec:musts`. Prints the ones
// without such a test and their count. Informational: it always exits 0 (not a CI gate yet).
// `--all` prints the covered ones too.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

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
      // MUST NOT, …", "never MUST.") or in a title ("MUST-reject list") is not one.
      if (/\bMUST (?:NOT )?[a-z]/.test(sentence)) found.push({ section, sentence });
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

const all = process.argv.includes("--all");
const sentences = musts(readFileSync(SPEC, "utf8"));
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
  `${sentences.length} MUST sentences in PROTOCOL.md; ${missing.length} in ${sections.size} sections (${[...sections].map((s) => `§${s}`).join(", ")}) have no test naming their section.`,
);
