// Picture previews: which protocol each terminal gets, the exact escape sequences (kitty's chunks
// and placeholders, iTerm2's inline image, tmux's passthrough), what a saved file must be to be
// shown, and how the sequences are written beside Ink's frames.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { ClientError } from "../src/errors.js";
import { DEFAULT_MAX_RETENTION_SECONDS, loadSettings } from "../src/settings.js";
import { chooseGraphics } from "../src/ui/graphics-detect.js";
import {
  DIACRITICS,
  drawAt,
  iterm2Image,
  KITTY_CHUNK,
  kittyDelete,
  kittyPlace,
  kittyPlaceholders,
  kittyTransmit,
  newImageId,
  PLACEHOLDER,
  tmuxWrap,
} from "../src/ui/graphics-escapes.js";
import { Iterm2Output, KittyOutput, reportFrames } from "../src/ui/graphics-output.js";
import { loadPreview, MAX_PREVIEW_BYTES, type PreviewImage, sniffImage } from "../src/ui/image-file.js";
import { viewerBox } from "../src/ui/image-view.js";
import { gifHeader, jpegHeader, makePng } from "./pictures.js";

const ESC = "\u001b";
const ST = `${ESC}\\`;
const dir = mkdtempSync(join(tmpdir(), "parley-graphics-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("chooseGraphics", () => {
  const cases: [string, NodeJS.ProcessEnv, "kitty" | "iterm2" | null, string][] = [
    ["kitty", { TERM: "xterm-kitty", KITTY_WINDOW_ID: "1" }, "kitty", "TERM=xterm-kitty"],
    ["kitty with TERM changed", { TERM: "xterm-256color", KITTY_WINDOW_ID: "3" }, "kitty", "KITTY_WINDOW_ID"],
    ["Ghostty", { TERM_PROGRAM: "ghostty", TERM: "xterm-ghostty" }, "kitty", "TERM_PROGRAM=ghostty"],
    ["Ghostty by TERM", { TERM: "xterm-ghostty" }, "kitty", "TERM=xterm-ghostty"],
    ["iTerm2", { TERM_PROGRAM: "iTerm.app", TERM: "xterm-256color" }, "iterm2", "TERM_PROGRAM=iTerm.app"],
    ["iTerm2 over ssh", { TERM: "xterm-256color", LC_TERMINAL: "iTerm2" }, "iterm2", "LC_TERMINAL=iTerm2"],
    // WezTerm speaks kitty's protocol but draws a virtual placement at the cursor.
    ["WezTerm", { TERM_PROGRAM: "WezTerm", TERM: "xterm-256color" }, "iterm2", "TERM_PROGRAM=WezTerm"],
    ["WezTerm by TERM", { TERM: "wezterm" }, "iterm2", "TERM=wezterm"],
    ["WezTerm over ssh", { TERM: "xterm-256color", WEZTERM_PANE: "0" }, "iterm2", "WEZTERM_PANE"],
    [
      "xterm",
      { TERM: "xterm-256color" },
      null,
      "TERM=xterm-256color is not kitty, Ghostty, iTerm2 or WezTerm",
    ],
    ["nothing", {}, null, "TERM=(unset) is not kitty, Ghostty, iTerm2 or WezTerm"],
    // A terminal started from a kitty window inherits KITTY_WINDOW_ID; its TERM_PROGRAM is its own.
    [
      "VS Code started from kitty",
      { TERM_PROGRAM: "vscode", KITTY_WINDOW_ID: "1" },
      null,
      "TERM_PROGRAM=vscode is not kitty, Ghostty, iTerm2 or WezTerm",
    ],
  ];
  for (const [what, env, protocol, reason] of cases) {
    it(`${what}: ${protocol ?? "none"}`, () => {
      expect(chooseGraphics(env)).toEqual({ protocol, tmux: false, reason });
    });
  }

  it("inside tmux or screen: none unless forced, and kitty's then goes through the passthrough", () => {
    const tmux = { TMUX: "/tmp/tmux-1000/default,1,0", TERM: "tmux-256color", KITTY_WINDOW_ID: "1" };
    expect(chooseGraphics(tmux)).toMatchObject({ protocol: null, tmux: true });
    expect(chooseGraphics(tmux).reason).toContain("allow-passthrough");
    expect(chooseGraphics({ TERM: "screen-256color", KITTY_WINDOW_ID: "1" }).protocol).toBe(null);
    expect(chooseGraphics(tmux, "kitty")).toEqual({
      protocol: "kitty",
      tmux: true,
      reason: "the imagePreview setting: kitty",
    });
    // iTerm2's picture is drawn at the outer terminal's cursor, which tmux moves.
    expect(chooseGraphics({ ...tmux, LC_TERMINAL: "iTerm2" }, "iterm2")).toMatchObject({ protocol: null });
  });

  it("the setting forces or turns off; PARLEY_IMAGE_PREVIEW overrides it; a bad one is a USAGE error", () => {
    expect(chooseGraphics({ TERM: "xterm-kitty" }, "off")).toEqual({
      protocol: null,
      tmux: false,
      reason: "the imagePreview setting is off",
    });
    expect(chooseGraphics({ TERM: "xterm" }, "iterm2").protocol).toBe("iterm2");
    expect(chooseGraphics({ TERM: "xterm", PARLEY_IMAGE_PREVIEW: "kitty" }, "off")).toEqual({
      protocol: "kitty",
      tmux: false,
      reason: "PARLEY_IMAGE_PREVIEW: kitty",
    });
    expect(chooseGraphics({ TERM: "xterm-kitty", PARLEY_IMAGE_PREVIEW: "" }).protocol).toBe("kitty");
    let error: unknown;
    try {
      chooseGraphics({ PARLEY_IMAGE_PREVIEW: "sixel" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ClientError);
    expect((error as ClientError).code).toBe("USAGE");
    expect((error as ClientError).message).toBe(
      'PARLEY_IMAGE_PREVIEW must be one of auto, off, kitty, iterm2; got "sixel"',
    );
  });

  it("the imagePreview setting loads, and a bad value says what is allowed", () => {
    const path = join(dir, "config.json");
    writeFileSync(path, JSON.stringify({ imagePreview: "kitty" }));
    expect(loadSettings(path)).toEqual({
      maxRetentionSeconds: DEFAULT_MAX_RETENTION_SECONDS,
      imagePreview: "kitty",
    });
    writeFileSync(path, JSON.stringify({ imagePreview: true }));
    expect(() => loadSettings(path)).toThrow(
      `settings file ${path}: "imagePreview" must be one of auto, off, kitty, iterm2; got true`,
    );
  });
});

/** The payload of one kitty command: what is between ";" and ST. */
const payload = (seq: string) => seq.slice(seq.indexOf(";") + 1, -ST.length);
const keys = (seq: string) => seq.slice(`${ESC}_G`.length, seq.indexOf(";"));

describe("kitty's sequences", () => {
  const id = (7 << 24) | 42;

  it("transmits a PNG in chunks of at most 4096 base64 bytes, m=1 on all but the last", () => {
    const png = makePng(40, 40); // about 4.8 KiB of random pixels: 6.4 KiB of base64, two chunks
    const chunks = kittyTransmit(id, png);
    expect(chunks.length).toBe(Math.ceil(png.toString("base64").length / KITTY_CHUNK));
    expect(chunks.length).toBeGreaterThan(1);
    for (const c of chunks) {
      expect(c.startsWith(`${ESC}_G`) && c.endsWith(ST)).toBe(true);
      expect(payload(c).length).toBeLessThanOrEqual(KITTY_CHUNK);
    }
    for (const c of chunks.slice(0, -1)) expect(payload(c).length % 4).toBe(0);
    // Only the first carries the keys; the others only m.
    expect(keys(chunks[0]!)).toBe(`a=t,f=100,t=d,i=${id},q=2,m=1`);
    for (const c of chunks.slice(1, -1)) expect(keys(c)).toBe("m=1");
    expect(keys(chunks.at(-1)!)).toBe("m=0");
    expect(Buffer.from(chunks.map(payload).join(""), "base64").equals(png)).toBe(true);
  });

  it("one chunk for a small PNG, and exactly 4096 bytes of base64 is still one", () => {
    const small = makePng(2, 2, [255, 0, 0]);
    expect(kittyTransmit(id, small)).toEqual([
      `${ESC}_Ga=t,f=100,t=d,i=${id},q=2,m=0;${small.toString("base64")}${ST}`,
    ]);
    const exact = new Uint8Array(3072); // 4096 base64 bytes
    const one = kittyTransmit(id, exact);
    expect(one.length).toBe(1);
    expect(keys(one[0]!)).toContain("m=0");
    expect(kittyTransmit(id, new Uint8Array(3073)).map(keys)).toEqual([
      `a=t,f=100,t=d,i=${id},q=2,m=1`,
      "m=0",
    ]);
    expect(() => kittyTransmit(id, new Uint8Array(0))).toThrow("png must not be empty");
  });

  it("places, deletes, and prints placeholders with row, column and the id's high byte", () => {
    expect(kittyPlace(id, 30, 10)).toBe(`${ESC}_Ga=p,U=1,i=${id},p=1,c=30,r=10,C=1,q=2${ST}`);
    expect(kittyDelete(id)).toBe(`${ESC}_Ga=d,d=I,i=${id},q=2${ST}`);
    // kitty's examples: U+0305 is 0, U+030D is 1, U+030E is 2.
    expect(DIACRITICS.length).toBe(297);
    expect(DIACRITICS.slice(0, 3)).toEqual(["\u0305", "\u030d", "\u030e"]);
    expect(DIACRITICS.at(-1)).toBe("\u{1d244}");
    expect(new Set(DIACRITICS).size).toBe(297);
    const rows = kittyPlaceholders(id, 3, 2);
    const [d0, d1, d2] = DIACRITICS as [string, string, string];
    const high = DIACRITICS[7]!;
    expect(rows).toEqual([
      `${ESC}[38;5;42m${PLACEHOLDER}${d0}${d0}${high}${PLACEHOLDER}${d0}${d1}${high}${PLACEHOLDER}${d0}${d2}${high}${ESC}[39m`,
      `${ESC}[38;5;42m${PLACEHOLDER}${d1}${d0}${high}${PLACEHOLDER}${d1}${d1}${high}${PLACEHOLDER}${d1}${d2}${high}${ESC}[39m`,
    ]);
  });

  it("refuses ids that a colour index and one diacritic cannot carry, and boxes beyond the diacritics", () => {
    for (const bad of [0, 42, 1 << 24, (1 << 24) | 256, 1.5])
      expect(() => kittyPlace(bad, 1, 1)).toThrow(/image id must be/);
    expect(() => kittyPlaceholders(id, 298, 1)).toThrow("cols must be 1 to 297, got 298");
    expect(() => kittyPlace(id, 1, 0)).toThrow("rows must be 1 to 297, got 0");
    for (let i = 0; i < 200; i++) {
      const fresh = newImageId();
      expect(() => kittyDelete(fresh)).not.toThrow();
    }
    expect(newImageId(() => 0)).toBe((1 << 24) | 1);
    expect(newImageId(() => 0.999999)).toBe(((255 << 24) | 255) >>> 0);
  });

  it("tmux's passthrough wraps one sequence with every ESC doubled", () => {
    expect(tmuxWrap(kittyDelete(id))).toBe(
      `${ESC}Ptmux;${ESC}${ESC}_Ga=d,d=I,i=${id},q=2${ESC}${ESC}\\${ST}`,
    );
  });
});

describe("iTerm2's sequence", () => {
  it("is OSC 1337 File= with the size, the box in cells, inline=1, and the base64 of the file", () => {
    const data = jpegHeader(640, 480);
    expect(iterm2Image(data, 40, 15)).toBe(
      `${ESC}]1337;File=inline=1;size=${data.length};width=40;height=15;preserveAspectRatio=1:${data.toString("base64")}\u0007`,
    );
    expect(() => iterm2Image(data, 0, 1)).toThrow("cols must be a positive integer, got 0");
    expect(() => iterm2Image(new Uint8Array(0), 1, 1)).toThrow("data must not be empty");
  });

  it("is drawn from the cursor's row up, in its column, with the cursor saved and restored", () => {
    expect(drawAt("IMG", 5, 3)).toBe(`${ESC}7${ESC}[5A${ESC}[4GIMG${ESC}8`);
    expect(drawAt("IMG", 0, 0)).toBe(`${ESC}7${ESC}[1GIMG${ESC}8`);
  });
});

describe("sniffImage", () => {
  it("tells PNG, JPEG and GIF by their first bytes, with their size", () => {
    expect(sniffImage(makePng(300, 200, [0, 0, 0]))).toEqual({ type: "png", width: 300, height: 200 });
    expect(sniffImage(jpegHeader(4032, 3024))).toEqual({ type: "jpeg", width: 4032, height: 3024 });
    expect(sniffImage(gifHeader(16, 9))).toEqual({ type: "gif", width: 16, height: 9 });
  });

  it("finds a JPEG's frame after fill bytes, and not one that is not there", () => {
    const j = jpegHeader(10, 20);
    const filled = Buffer.concat([j.subarray(0, 2), Buffer.from([0xff, 0xff]), j.subarray(2)]);
    expect(sniffImage(filled)).toEqual({ type: "jpeg", width: 10, height: 20 });
    expect(sniffImage(Buffer.from([0xff, 0xd8, 0xff, 0xd9]))).toBe(null);
    expect(sniffImage(j.subarray(0, 24))).toBe(null); // cut inside the frame header
  });

  it("says null for anything else, cut or disguised", () => {
    expect(sniffImage(Buffer.from("%PDF-1.7\n"))).toBe(null);
    expect(sniffImage(new Uint8Array(0))).toBe(null);
    expect(sniffImage(makePng(1, 1, [0, 0, 0]).subarray(0, 20))).toBe(null);
    const png = makePng(1, 1, [0, 0, 0]);
    png.write("IHDX", 12, "latin1");
    expect(sniffImage(png)).toBe(null);
    expect(sniffImage(Buffer.from("GIF90a\u0001\u0000\u0001\u0000"))).toBe(null);
  });
});

describe("loadPreview", () => {
  const saved = (name: string, bytes: Uint8Array) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    return { name, size: bytes.length, sha256, savedAs: path };
  };

  it("reads back a saved picture whose bytes are the ones checked", async () => {
    const png = makePng(20, 10);
    const got = await loadPreview(saved("ok.png", png));
    expect(got.ok).toBe(true);
    const image = (got as { image: PreviewImage }).image;
    expect({ ...image, bytes: Buffer.from(image.bytes).equals(png) }).toEqual({
      type: "png",
      width: 20,
      height: 10,
      bytes: true,
    });
  });

  it("refuses a file changed, grown or gone since it was fetched, and says where it is", async () => {
    const file = saved("changed.png", makePng(4, 4));
    writeFileSync(file.savedAs, makePng(4, 4));
    expect(await loadPreview(file)).toEqual({
      ok: false,
      why: `changed.png: ${file.savedAs} changed since it was fetched and checked; not shown`,
    });
    const grown = saved("grown.png", makePng(4, 4));
    writeFileSync(grown.savedAs, Buffer.concat([makePng(4, 4), Buffer.from("x")]));
    expect((await loadPreview(grown)).ok).toBe(false);
    expect(await loadPreview({ ...file, savedAs: join(dir, "nowhere.png") })).toEqual({
      ok: false,
      why: `changed.png: it is not at ${join(dir, "nowhere.png")} any more`,
    });
    expect(await loadPreview({ ...file, savedAs: null })).toEqual({
      ok: false,
      why: "changed.png: it has not been saved here: /save first",
    });
  });

  it("refuses what is not a picture by its content, pictures too large to decode, and files too large to send", async () => {
    expect(await loadPreview(saved("fake.png", Buffer.from("not a picture at all")))).toEqual({
      ok: false,
      why: "fake.png: not a PNG, JPEG or GIF picture (by its content)",
    });
    const huge = saved("huge.gif", gifHeader(20_000, 20_000));
    expect((await loadPreview(huge)) as { why: string }).toEqual({
      ok: false,
      why: `huge.gif: 20000x20000 pixels is more than a preview draws; it is at ${huge.savedAs}`,
    });
    expect(((await loadPreview(saved("empty.gif", gifHeader(0, 5)))) as { why: string }).why).toBe(
      "empty.gif: its header says 0x5 pixels",
    );
    const big = saved("big.png", makePng(20, 10));
    expect(await loadPreview({ ...big, size: MAX_PREVIEW_BYTES + 1 })).toEqual({
      ok: false,
      why: `big.png: 8.0 MiB is more than a preview sends (8.0 MiB); it is at ${big.savedAs}`,
    });
    expect((await loadPreview(big, 100)).ok).toBe(false);
  });
});

describe("viewerBox", () => {
  it("keeps a small picture at its natural size (8x16 pixels a cell), centred", () => {
    expect(viewerBox(100, 23, { type: "png", width: 80, height: 48 })).toEqual({
      top: 2 + Math.floor((19 - 3) / 2),
      left: 2 + Math.floor((96 - 10) / 2),
      cols: 10,
      rows: 3,
    });
  });

  it("shrinks a large one into the room inside the frame, keeping its shape", () => {
    const box = viewerBox(80, 23, { type: "jpeg", width: 4032, height: 3024 });
    expect(box.rows).toBe(19);
    expect(box.cols).toBe(Math.floor(504 * (19 / 189)));
    expect(box.top).toBe(2);
    expect(box.left + box.cols).toBeLessThanOrEqual(78);
    const wide = viewerBox(80, 23, { type: "png", width: 10_000, height: 10 });
    expect(wide).toMatchObject({ cols: 76, rows: 1, left: 2 });
  });
});

/** A stream that keeps what is written to it. */
function sink() {
  const stream = new PassThrough() as PassThrough & { written: string[] };
  stream.written = [];
  stream.on("data", (d: Buffer) => stream.written.push(d.toString()));
  return stream;
}

describe("KittyOutput", () => {
  const image = (bytes: Uint8Array): PreviewImage => ({ type: "png", width: 1, height: 1, bytes });

  it("sends every chunk in order, lets the event loop run between them, then places and deletes", async () => {
    const written: string[] = [];
    const out = new KittyOutput((s) => written.push(s), false);
    const id = (3 << 24) | 9;
    const png = new Uint8Array(3 * 1024 * 40).fill(7); // 40 chunks
    // A turn of the event loop queued now runs once the first chunks are out, before the last.
    let writtenAtTurn = -1;
    setImmediate(() => {
      writtenAtTurn = written.length;
    });
    const loading = out.load(id, image(png));
    // Nothing that comes after the chunks can come between them.
    const placed = out.show(id, { top: 2, left: 2, cols: 5, rows: 4 });
    out.remove(id);
    await loading;
    await placed;
    await new Promise((r) => setImmediate(r));
    expect(written.length).toBe(40 + 2);
    expect(written.slice(0, 40)).toEqual(kittyTransmit(id, png));
    expect(written.slice(40)).toEqual([kittyPlace(id, 5, 4), kittyDelete(id)]);
    expect(writtenAtTurn).toBe(16);
  });

  it("inside tmux, wraps each command on its own; refuses what is not a PNG", async () => {
    const written: string[] = [];
    const out = new KittyOutput((s) => written.push(s), true);
    const id = (1 << 24) | 1;
    await out.load(id, image(new Uint8Array(4000)));
    expect(written).toEqual(kittyTransmit(id, new Uint8Array(4000)).map(tmuxWrap));
    await expect(
      out.load(id, { type: "jpeg", width: 1, height: 1, bytes: jpegHeader(1, 1) }),
    ).rejects.toThrow("kitty's protocol takes PNG, not jpeg");
  });
});

describe("Iterm2Output beside Ink's frames", () => {
  const bytes = jpegHeader(64, 64);
  const image: PreviewImage = { type: "jpeg", width: 64, height: 64, bytes };
  const box = { top: 4, left: 6, cols: 8, rows: 4 };
  const frame = (lines: number) =>
    `${ESC}[2K${Array.from({ length: lines }, (_, i) => `row ${i}`).join("\n")}\n`;

  it("draws the picture after each frame of the viewer's height, at its box, and stops when removed", async () => {
    const real = sink();
    const { stream, frames } = reportFrames(real as unknown as NodeJS.WriteStream);
    const out = new Iterm2Output(frames);
    const picture = drawAt(iterm2Image(bytes, 8, 4), 20 - 4, 6);
    await out.load(1, image);
    // Before any frame there is nowhere to draw from.
    await out.show(1, box, 20);
    stream.write(frame(20));
    stream.write(`${ESC}[?2026l`); // a write that is not a frame
    stream.write(frame(12)); // not the viewer's frame (another screen, or a resize in between)
    stream.write(frame(20));
    out.remove(1);
    stream.write(frame(20));
    await new Promise((r) => setImmediate(r));
    expect(real.written).toEqual([
      frame(20),
      picture,
      `${ESC}[?2026l`,
      frame(12),
      frame(20),
      picture,
      frame(20),
    ]);
  });

  it("draws at once when the viewer's frame is already on screen, and passes the stream's own properties through", async () => {
    const real = sink();
    const { stream, frames } = reportFrames(real as unknown as NodeJS.WriteStream);
    stream.write(frame(20));
    expect(frames.lastLineBreaks).toBe(20);
    const out = new Iterm2Output(frames);
    await out.load(2, image);
    await out.show(2, box, 20);
    await new Promise((r) => setImmediate(r));
    expect(real.written).toEqual([frame(20), drawAt(iterm2Image(bytes, 8, 4), 16, 6)]);
    expect(stream.writable).toBe(true);
    let resized = 0;
    const onResize = () => resized++;
    stream.on("resize", onResize);
    real.emit("resize");
    stream.off("resize", onResize);
    real.emit("resize");
    expect(resized).toBe(1);
    await expect(out.show(3, box, 20)).rejects.toThrow("image 3 was not loaded");
  });
});
