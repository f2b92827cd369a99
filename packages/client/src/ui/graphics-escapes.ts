// The escape sequences that draw a picture: kitty's graphics protocol with Unicode placeholders,
// and iTerm2's inline images. Strings only, no I/O (graphics-output.ts writes them).
//
// kitty (https://sw.kovidgoyal.net/kitty/graphics-protocol/):
//   ESC _G <key=value,…> ; <base64 payload> ESC \      an APC; f=100 is PNG, the one compressed
//                                                      format the protocol takes
//   The payload goes in chunks of at most 4096 base64 bytes, each but the last a multiple of 4,
//   with m=1 on all but the last (m=0); only the first carries the other keys ("Remote client").
//   q=2 silences the terminal's replies, which would otherwise arrive on stdin as keys.
//   a=p,U=1 makes a virtual placement of c columns by r rows, which the terminal draws wherever
//   U+10EEEE cells for it are printed: the foreground colour holds the image id's low byte
//   (256-colour mode, which tmux passes on whatever it knows of the terminal's colours), and
//   three combining diacritics the cell's row, its column and the id's high byte
//   ("Unicode placeholders"). The picture is fitted to the c x r box, aspect ratio kept.
//
// iTerm2 (https://iterm2.com/documentation-images.html):
//   ESC ] 1337 ; File = inline=1;size=N;width=Cols;height=Rows;preserveAspectRatio=1 : base64 BEL
//   drawn at the cursor, fitted to the box; any format macOS (or WezTerm) decodes.

const ESC = "\u001b";
const ST = `${ESC}\\`;
const BEL = "\u0007";

/** The longest base64 payload of one kitty graphics command. */
export const KITTY_CHUNK = 4096;

/** The placeholder character of kitty's Unicode placeholders. */
export const PLACEHOLDER = "\u{10EEEE}";

/**
 * The diacritics that number a placeholder's row, column and id byte, 0 to 296, from kitty's
 * gen/rowcolumn-diacritics.txt: the combining characters of class 230 in Unicode 6.0.0 without a
 * decomposition, less a few that normalisation fuses with a base letter.
 */
const DIACRITIC_RANGES = `0305 030D 030E 0310 0312 033D-033F 0346 034A-034C 0350-0352 0357 035B 0363-036F
0483-0487 0592-0595 0597-0599 059C-05A1 05A8 05A9 05AB 05AC 05AF 05C4 0610-0617 0657-065B 065D 065E
06D6-06DC 06DF-06E2 06E4 06E7 06E8 06EB 06EC 0730 0732 0733 0735 0736 073A 073D 073F-0741 0743 0745
0747 0749 074A 07EB-07F1 07F3 0816-0819 081B-0823 0825-0827 0829-082D 0951 0953 0954 0F82 0F83 0F86
0F87 135D-135F 17DD 193A 1A17 1A75-1A7C 1B6B 1B6D-1B73 1CD0-1CD2 1CDA 1CDB 1CE0 1DC0 1DC1 1DC3-1DC9
1DCB 1DCC 1DD1-1DE6 1DFE 20D0 20D1 20D4-20D7 20DB 20DC 20E1 20E7 20E9 20F0 2CEF-2CF1 2DE0-2DFF A66F
A67C A67D A6F0 A6F1 A8E0-A8F1 AAB0 AAB2 AAB3 AAB7 AAB8 AABE AABF AAC1 FE20-FE26 10A0F 10A38
1D185-1D189 1D1AA-1D1AD 1D242-1D244`;

export const DIACRITICS: readonly string[] = DIACRITIC_RANGES.split(/\s+/).flatMap((r) => {
  const [from, to = from] = r.split("-").map((h) => Number.parseInt(h, 16)) as [number, number?];
  return Array.from({ length: to - from + 1 }, (_, i) => String.fromCodePoint(from + i));
});

/** The most rows or columns a placement can have: one per diacritic. */
export const MAX_PLACEHOLDER_SPAN = DIACRITICS.length;

function checkId(id: number): void {
  // The low byte is a 256-colour index and the high byte a diacritic: the middle bytes stay zero.
  if (!Number.isInteger(id) || (id & 0x00ffff00) !== 0 || (id & 0xff) === 0 || id >>> 24 === 0)
    throw new RangeError(`image id must be (1..255 << 24) | 1..255, got ${id}`);
}

function checkSpan(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_PLACEHOLDER_SPAN)
    throw new RangeError(`${what} must be 1 to ${MAX_PLACEHOLDER_SPAN}, got ${n}`);
}

/**
 * A new image id for kitty's placeholders: a random high byte and low byte (the middle two are
 * zero, so the id fits a 256-colour index and one diacritic), about 65,000 of them, so that two
 * programs in one terminal are unlikely to pick the same.
 */
export function newImageId(random: () => number = Math.random): number {
  const byte = () => 1 + Math.floor(random() * 255);
  return ((byte() << 24) | byte()) >>> 0;
}

/**
 * Transmits a PNG to kitty under `id`, without showing it: one command per chunk of at most 4096
 * base64 bytes, m=1 on all but the last (m=0).
 *
 * @example kittyTransmit(0x01000007, png) // ["\x1b_Ga=t,f=100,t=d,i=16777223,q=2,m=1;iVBORw0…\x1b\\", "\x1b_Gm=0;…\x1b\\"]
 */
export function kittyTransmit(id: number, png: Uint8Array): string[] {
  checkId(id);
  if (png.length === 0) throw new RangeError("png must not be empty");
  const data = Buffer.from(png.buffer, png.byteOffset, png.length).toString("base64");
  const out: string[] = [];
  for (let at = 0; at < data.length; at += KITTY_CHUNK) {
    const more = at + KITTY_CHUNK < data.length ? 1 : 0;
    const keys = at === 0 ? `a=t,f=100,t=d,i=${id},q=2,m=${more}` : `m=${more}`;
    out.push(`${ESC}_G${keys};${data.slice(at, at + KITTY_CHUNK)}${ST}`);
  }
  return out;
}

/**
 * A virtual placement of image `id`, `cols` x `rows` cells, drawn where its placeholders are
 * printed; placement id 1, so that a new size replaces the old. C=1: the cursor stays.
 */
export function kittyPlace(id: number, cols: number, rows: number): string {
  checkId(id);
  checkSpan("cols", cols);
  checkSpan("rows", rows);
  return `${ESC}_Ga=p,U=1,i=${id},p=1,c=${cols},r=${rows},C=1,q=2${ST}`;
}

/** Deletes image `id`, its placements and its data (d=I frees the data too). */
export function kittyDelete(id: number): string {
  checkId(id);
  return `${ESC}_Ga=d,d=I,i=${id},q=2${ST}`;
}

/**
 * The text that shows image `id` in a `cols` x `rows` box: one line per row, each placeholder
 * with its row, column and the id's high byte, in the id's low byte as foreground colour. Every
 * cell is one column wide, which is how Ink measures it too.
 */
export function kittyPlaceholders(id: number, cols: number, rows: number): string[] {
  checkId(id);
  checkSpan("cols", cols);
  checkSpan("rows", rows);
  const high = DIACRITICS[id >>> 24]!;
  return Array.from({ length: rows }, (_, r) => {
    let line = `${ESC}[38;5;${id & 0xff}m`;
    for (let c = 0; c < cols; c++) line += `${PLACEHOLDER}${DIACRITICS[r]}${DIACRITICS[c]}${high}`;
    return `${line}${ESC}[39m`;
  });
}

/**
 * iTerm2's inline image of `data` (PNG, JPEG, GIF: whatever the terminal decodes), fitted to
 * `cols` x `rows` cells with its aspect ratio kept, drawn at the cursor.
 */
export function iterm2Image(data: Uint8Array, cols: number, rows: number): string {
  if (data.length === 0) throw new RangeError("data must not be empty");
  if (!Number.isInteger(cols) || cols < 1)
    throw new RangeError(`cols must be a positive integer, got ${cols}`);
  if (!Number.isInteger(rows) || rows < 1)
    throw new RangeError(`rows must be a positive integer, got ${rows}`);
  const b64 = Buffer.from(data.buffer, data.byteOffset, data.length).toString("base64");
  return `${ESC}]1337;File=inline=1;size=${data.length};width=${cols};height=${rows};preserveAspectRatio=1:${b64}${BEL}`;
}

/**
 * `seq` through tmux's passthrough, ESC P tmux; … ESC \, with every ESC inside doubled; one
 * escape sequence a call, so that no passthrough holds more than one kitty chunk.
 */
export function tmuxWrap(seq: string): string {
  return `${ESC}Ptmux;${seq.replaceAll(ESC, ESC + ESC)}${ST}`;
}

/**
 * Draws `image` (an iTerm2 sequence) with its top left `up` rows above the cursor, in column
 * `col` (0-based), and puts the cursor back: DECSC, CUU, CHA, the picture, DECRC.
 */
export function drawAt(image: string, up: number, col: number): string {
  return `${ESC}7${up > 0 ? `${ESC}[${up}A` : ""}${ESC}[${col + 1}G${image}${ESC}8`;
}
