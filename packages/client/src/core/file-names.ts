// File names: a received one is a claim by the sender, made safe before it names anything on disk
// (PROTOCOL.md §14.4); a saved file never replaces one that is there; and a sent file's name and
// media type, from its path.
import { linkSync } from "node:fs";
import { basename, extname, join } from "node:path";

/** C0 and C1 controls, DEL, and the bidirectional controls that reorder what a terminal shows. */
const BIDI = "\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069";
const UNSAFE = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f${BIDI}]`, "g");

/**
 * A received file name made safe to save under (§14.4): controls and bidi controls dropped, then
 * path separators and `..` components, dots and spaces trimmed at the ends, `file` if nothing is
 * left. The order matters: a `..` hidden by a control character is still a `..`.
 */
export function sanitizeFileName(name: string): string {
  const parts = name
    .replace(UNSAFE, "")
    .split(/[/\\]/)
    .filter((p) => p !== "..");
  const joined = parts.join("").replace(/^[. ]+|[. ]+$/g, "");
  return joined === "" ? "file" : joined;
}

/** `name` with ` (n)` before its extension: "report.pdf", 2 → "report (2).pdf". */
export function withSuffix(name: string, n: number): string {
  if (n === 0) return name;
  const ext = extname(name);
  const stem = ext && ext !== name ? name.slice(0, -ext.length) : name;
  return `${stem} (${n})${stem === name ? "" : ext}`;
}

/**
 * Gives `source` (a file in `dir`) the name `name` in `dir`, or the first of `name (1)`, `name
 * (2)`, … that is free, without ever replacing a file: a hard link fails when its name exists, so
 * no other process can slip a file in between the check and the write. Returns the path used.
 */
export function linkUnique(source: string, dir: string, name: string): string {
  for (let n = 0; n < 10_000; n++) {
    const target = join(dir, withSuffix(name, n));
    try {
      linkSync(source, target);
      return target;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
  throw new Error(`no free name like ${JSON.stringify(name)} in ${dir}`);
}

const MEDIA_TYPES: Record<string, string> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".svg": "image/svg+xml",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
  ".gz": "application/gzip",
  ".tar": "application/x-tar",
  ".json": "application/json",
  ".txt": "text/plain",
  ".log": "text/plain",
  ".md": "text/markdown",
  ".csv": "text/csv",
  ".html": "text/html",
  ".mp3": "audio/mpeg",
  ".mp4": "video/mp4",
};

/** The media type a sent file is announced with, from its extension ("" when unknown). */
export function mediaTypeOf(path: string): string {
  return MEDIA_TYPES[extname(path).toLowerCase()] ?? "";
}

/** The name a sent file is announced with: its base name, cut to 255 bytes of UTF-8 on a character boundary. */
export function sentFileName(path: string): string {
  let name = sanitizeFileName(basename(path));
  while (Buffer.byteLength(name, "utf8") > 255) name = [...name].slice(0, -1).join("");
  return name;
}
