// A saved file, read back for /view: only what was fetched and checked, still the same bytes, a
// picture by its own first bytes (not by the media type, the sender's claim), and small enough to
// send to the terminal. Reading is asynchronous; hashing a few MiB takes milliseconds.
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { humanSize } from "../output.js";
import { displayText } from "../text.js";

export type ImageType = "png" | "jpeg" | "gif";

export interface ImageInfo {
  readonly type: ImageType;
  /** In pixels, as the file's header says. */
  readonly width: number;
  readonly height: number;
}

export interface PreviewImage extends ImageInfo {
  readonly bytes: Uint8Array;
}

/**
 * The most bytes a preview sends. Base64 makes it a third more, and iTerm2's sequence is one
 * write that the terminal must take whole, again at every resize: past this the file line says
 * where the file is instead.
 */
export const MAX_PREVIEW_BYTES = 8 * 1024 * 1024;
/** Terminals decode what they are sent into pixels, four bytes each: a small PNG can claim a huge picture. */
export const MAX_PREVIEW_SIDE = 10_000;
export const MAX_PREVIEW_PIXELS = 50_000_000;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const u16be = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const u16le = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const u32be = (b: Uint8Array, at: number) =>
  ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const ascii = (b: Uint8Array, at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));

/** A JPEG's size, from its first start-of-frame segment (ITU T.81 B.2.2), or null. */
function jpegSize(b: Uint8Array): { width: number; height: number } | null {
  let at = 2;
  while (at + 4 <= b.length) {
    if (b[at] !== 0xff) return null;
    const marker = b[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    // Markers without a length: TEM, RST0-7 (and SOI, already passed).
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      at += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return null; // end of image, or scan data before any frame
    const length = u16be(b, at + 2);
    if (length < 2) return null;
    // SOF0-15, less DHT (C4), JPG (C8) and DAC (CC): length, precision, height, width.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (at + 9 > b.length) return null;
      return { height: u16be(b, at + 5), width: u16be(b, at + 7) };
    }
    at += 2 + length;
  }
  return null;
}

/**
 * What picture `bytes` hold, by their first bytes: PNG (signature, then IHDR), JPEG (SOI, then a
 * frame header) or GIF (GIF87a / GIF89a), with the size its header gives; null for anything else.
 */
export function sniffImage(b: Uint8Array): ImageInfo | null {
  if (b.length >= 24 && PNG_SIGNATURE.every((v, i) => b[i] === v)) {
    if (u32be(b, 8) !== 13 || ascii(b, 12, 4) !== "IHDR") return null;
    return { type: "png", width: u32be(b, 16), height: u32be(b, 20) };
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
    const size = jpegSize(b);
    return size ? { type: "jpeg", ...size } : null;
  }
  if (b.length >= 10 && (ascii(b, 0, 6) === "GIF87a" || ascii(b, 0, 6) === "GIF89a")) {
    return { type: "gif", width: u16le(b, 6), height: u16le(b, 8) };
  }
  return null;
}

/** What /view knows of a file: its record's name, size, SHA-256 and where it was saved. */
export interface SavedFile {
  readonly name: string;
  readonly size: number;
  readonly sha256: string | null;
  readonly savedAs: string | null;
}

export type Loaded =
  | { readonly ok: true; readonly image: PreviewImage }
  | { readonly ok: false; readonly why: string };

/**
 * Reads a saved file back for a preview, and says why not when it cannot be one: too large, not
 * there any more, changed since it was fetched and checked, not a PNG, JPEG or GIF, or a picture
 * too large to decode.
 */
export async function loadPreview(file: SavedFile, max = MAX_PREVIEW_BYTES): Promise<Loaded> {
  const name = displayText(file.name);
  const fail = (why: string): Loaded => ({ ok: false, why: `${name}: ${why}` });
  if (file.savedAs === null || file.sha256 === null) return fail("it has not been saved here: /save first");
  const where = displayText(file.savedAs);
  if (file.size > max)
    return fail(
      `${humanSize(file.size)} is more than a preview sends (${humanSize(max)}); it is at ${where}`,
    );
  let bytes: Uint8Array;
  try {
    const handle = await open(file.savedAs, "r");
    try {
      // One byte more than announced: a file that grew is told from one that did not.
      const buf = Buffer.alloc(file.size + 1);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await handle.read(buf, got, buf.length - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      bytes = buf.subarray(0, got);
    } finally {
      await handle.close();
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(
      code === "ENOENT" ? `it is not at ${where} any more` : `cannot read ${where} (${code ?? String(e)})`,
    );
  }
  // The bytes shown are the bytes whose hash the download checked, not whatever is there now.
  if (bytes.length !== file.size || createHash("sha256").update(bytes).digest("hex") !== file.sha256)
    return fail(`${where} changed since it was fetched and checked; not shown`);
  const info = sniffImage(bytes);
  if (!info) return fail("not a PNG, JPEG or GIF picture (by its content)");
  if (info.width < 1 || info.height < 1) return fail(`its header says ${info.width}x${info.height} pixels`);
  if (
    info.width > MAX_PREVIEW_SIDE ||
    info.height > MAX_PREVIEW_SIDE ||
    info.width * info.height > MAX_PREVIEW_PIXELS
  )
    return fail(`${info.width}x${info.height} pixels is more than a preview draws; it is at ${where}`);
  return { ok: true, image: { ...info, bytes } };
}
