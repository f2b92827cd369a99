// Received file names (PROTOCOL.md §14.4): nasty names made safe, and saving that never replaces a
// file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  linkUnique,
  mediaTypeOf,
  sanitizeFileName,
  sentFileName,
  withSuffix,
} from "../../src/core/file-names.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("§14.4 received file names", () => {
  it("§14.4 drops path separators and .. components, so a name cannot leave the download folder", () => {
    const cases: [string, string][] = [
      ["../../etc/passwd", "etcpasswd"],
      ["/etc/shadow", "etcshadow"],
      ["..\\..\\Windows\\System32\\evil.dll", "WindowsSystem32evil.dll"],
      ["a/../b.txt", "ab.txt"],
      ["..", "file"],
      ["../..", "file"],
      ["./.", "file"],
      ["dir/", "dir"],
    ];
    for (const [name, safe] of cases) expect(sanitizeFileName(name), name).toBe(safe);
  });

  it("§14.4 drops C0, C1, DEL and bidi controls, also when they hide a .. or a separator", () => {
    const cases: [string, string][] = [
      ["report\u0000.pdf", "report.pdf"],
      ["line\nbreak\r.txt", "linebreak.txt"],
      ["esc\u001b[31mred.txt", "esc[31mred.txt"],
      ["del\u007f.txt", "del.txt"],
      ["c1\u0085\u009b.txt", "c1.txt"],
      // "invoice‮fdp.exe" shows as "invoiceexe.pdf" in a terminal that honours the override.
      ["invoice\u202efdp.exe", "invoicefdp.exe"],
      ["a\u200e\u200f\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069b", "ab"],
      [".\u200e./secret", "secret"],
      ["\u202e../x", "x"],
    ];
    for (const [name, safe] of cases) expect(sanitizeFileName(name), JSON.stringify(name)).toBe(safe);
  });

  it("§14.4 trims dots and spaces at the ends, falls back to `file`, keeps what is harmless", () => {
    const cases: [string, string][] = [
      [".bashrc", "bashrc"],
      ["  spaced  ", "spaced"],
      ["name. . .", "name"],
      [" . ", "file"],
      ["\u0000\u0001", "file"],
      ["Été 🌄.png", "Été 🌄.png"],
      ["a..b.txt", "a..b.txt"],
      ["résumé (final).pdf", "résumé (final).pdf"],
    ];
    for (const [name, safe] of cases) expect(sanitizeFileName(name), JSON.stringify(name)).toBe(safe);
  });

  it("§14.4 numbers a name before its extension", () => {
    expect(withSuffix("report.pdf", 0)).toBe("report.pdf");
    expect(withSuffix("report.pdf", 1)).toBe("report (1).pdf");
    expect(withSuffix("archive.tar.gz", 2)).toBe("archive.tar (2).gz");
    expect(withSuffix("README", 3)).toBe("README (3)");
  });

  it("§14.4 never overwrites: an existing name gets (1), (2), …", () => {
    const dir = mkdtempSync(join(tmpdir(), "parley-names-"));
    dirs.push(dir);
    writeFileSync(join(dir, "a.txt"), "old");
    writeFileSync(join(dir, "a (1).txt"), "older");
    const src = join(dir, "src");
    writeFileSync(src, "new");
    expect(linkUnique(src, dir, "a.txt")).toBe(join(dir, "a (2).txt"));
    expect(readFileSync(join(dir, "a.txt"), "utf8")).toBe("old");
    expect(readFileSync(join(dir, "a (1).txt"), "utf8")).toBe("older");
    expect(readFileSync(join(dir, "a (2).txt"), "utf8")).toBe("new");
    expect(linkUnique(src, dir, "b.txt")).toBe(join(dir, "b.txt"));
  });
});

describe("sent file names and media types", () => {
  it("announces a file's base name, cut to 255 bytes of UTF-8, and its media type by extension", () => {
    expect(sentFileName("/home/me/docs/report.pdf")).toBe("report.pdf");
    const long = sentFileName(`/tmp/${"é".repeat(200)}`);
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(255);
    expect(long).toBe("é".repeat(127));
    expect(mediaTypeOf("x.PNG")).toBe("image/png");
    expect(mediaTypeOf("x.unknown")).toBe("");
  });
});
