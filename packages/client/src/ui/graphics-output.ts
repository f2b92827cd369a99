// Putting a picture on the terminal beside Ink, which owns the screen and redraws it by erasing
// and rewriting its lines (log-update; this app does not use incremental rendering).
//
// kitty: the picture is sent once (a=t, chunked), a virtual placement gives it a box of cells,
// and the viewer prints placeholder cells as ordinary text. Ink diffs, erases and rewrites them
// like any text, and the terminal draws the picture wherever they are; closing the viewer
// deletes it (d=I), freeing the terminal's memory. Between two chunks the event loop runs, so
// keys and frames go on while a large picture is sent: the protocol asks only that no other
// graphics command come between the chunks of one image, which the queue here ensures.
//
// iTerm2: an inline image is drawn at the cursor into the cells under it, and each Ink frame
// erases those cells again. So Ink writes through reportFrames(), and after every frame write
// (a write with line breaks; its number of line breaks is the row Ink leaves the cursor on) the
// picture is drawn again at its box, with the cursor saved and restored around it: inside Ink's
// synchronized-output bracket (CSI ?2026), so the box is never seen empty. While the viewer is
// open its frame does not change (the viewer is all there is on screen), and Ink writes nothing
// for an unchanged frame, so in practice the picture is sent when it opens and on a resize.
import type { GraphicsChoice, ImageProtocol } from "./graphics-detect.js";
import { drawAt, iterm2Image, kittyDelete, kittyPlace, kittyTransmit, tmuxWrap } from "./graphics-escapes.js";
import type { PreviewImage } from "./image-file.js";

/** A box of cells in the chat screen's frame, 0-based from its top left. */
export interface CellBox {
  readonly top: number;
  readonly left: number;
  readonly cols: number;
  readonly rows: number;
}

/** Ink's frame writes, seen from outside Ink. */
export interface FrameReporter {
  /** Calls `fn` after each frame write with its line breaks; what it returns stops that. */
  onFrame(fn: (lineBreaks: number) => void): () => void;
  /** The line breaks of the last frame written, or null before the first. */
  readonly lastLineBreaks: number | null;
  /** Writes to the terminal without being taken for a frame. */
  write(s: string): void;
}

/**
 * `stream` as Ink should write to it: every write passes through unchanged, and one with a line
 * break in it (a frame: Ink's other writes are cursor modes and the sync brackets, ours have no
 * line breaks) is reported once written.
 */
export function reportFrames(stream: NodeJS.WriteStream): {
  stream: NodeJS.WriteStream;
  frames: FrameReporter;
} {
  const listeners = new Set<(lineBreaks: number) => void>();
  let last: number | null = null;
  const write = (...args: unknown[]): boolean => {
    const ok = Reflect.apply(stream.write, stream, args) as boolean;
    const chunk = args[0];
    const text =
      typeof chunk === "string" ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString() : "";
    if (text.includes("\n")) {
      last = text.split("\n").length - 1;
      for (const fn of [...listeners]) fn(last);
    }
    return ok;
  };
  const proxy = new Proxy(stream, {
    get(target, key) {
      if (key === "write") return write;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    stream: proxy,
    frames: {
      onFrame(fn) {
        listeners.add(fn);
        return () => listeners.delete(fn);
      },
      get lastLineBreaks() {
        return last;
      },
      write: (s) => stream.write(s),
    },
  };
}

/** What the chat screen is given: the protocol chosen, and for iTerm2 Ink's frames. */
export interface ImageSupport {
  readonly choice: GraphicsChoice;
  readonly frames?: FrameReporter;
}

/** A picture on the terminal, for the viewer. */
export interface ImageOutput {
  readonly protocol: ImageProtocol;
  /** Hands the picture to the terminal; resolves once it can be shown. */
  load(id: number, image: PreviewImage): Promise<void>;
  /** Shows the loaded picture in `box` of a frame `frameHeight` rows tall; resolves once it is. */
  show(id: number, box: CellBox, frameHeight: number): Promise<void>;
  /** Takes it off the screen and out of the terminal. */
  remove(id: number): void;
}

/** Chunks sent between two turns of the event loop: 64 KiB of base64. */
const CHUNKS_PER_TURN = 16;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class KittyOutput implements ImageOutput {
  readonly protocol = "kitty";
  /** Every command in order, so that no command comes between the chunks of an image. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly write: (s: string) => void,
    private readonly tmux: boolean,
  ) {}

  load(id: number, image: PreviewImage): Promise<void> {
    if (image.type !== "png")
      return Promise.reject(new RangeError(`kitty's protocol takes PNG, not ${image.type}`));
    return this.next(async () => {
      const chunks = kittyTransmit(id, image.bytes);
      for (let i = 0; i < chunks.length; i++) {
        this.send(chunks[i]!);
        if (i % CHUNKS_PER_TURN === CHUNKS_PER_TURN - 1) await turn();
      }
    });
  }

  show(id: number, box: CellBox): Promise<void> {
    return this.next(() => this.send(kittyPlace(id, box.cols, box.rows)));
  }

  remove(id: number): void {
    void this.next(() => this.send(kittyDelete(id)));
  }

  private send(seq: string): void {
    this.write(this.tmux ? tmuxWrap(seq) : seq);
  }

  private next(step: () => Promise<void> | void): Promise<void> {
    const done = this.queue.then(step);
    // A failed write (the terminal gone) does not stop the commands after it.
    this.queue = done.catch(() => {});
    return done;
  }
}

export class Iterm2Output implements ImageOutput {
  readonly protocol = "iterm2";
  private readonly images = new Map<number, Uint8Array>();
  private shown: { id: number; seq: string; box: CellBox; frameHeight: number } | null = null;
  private stop: (() => void) | null = null;

  constructor(private readonly frames: FrameReporter) {}

  load(id: number, image: PreviewImage): Promise<void> {
    this.images.set(id, image.bytes);
    return Promise.resolve();
  }

  show(id: number, box: CellBox, frameHeight: number): Promise<void> {
    const bytes = this.images.get(id);
    if (!bytes) return Promise.reject(new RangeError(`image ${id} was not loaded`));
    this.shown = { id, seq: iterm2Image(bytes, box.cols, box.rows), box, frameHeight };
    this.stop ??= this.frames.onFrame((n) => this.draw(n));
    // The frame with the box may be on screen already: then no write of Ink's would draw it.
    this.draw(this.frames.lastLineBreaks);
    return Promise.resolve();
  }

  remove(id: number): void {
    this.images.delete(id);
    if (this.shown?.id !== id) return;
    // Ink's next frame (without the viewer) erases the cells the picture was drawn into.
    this.shown = null;
    this.stop?.();
    this.stop = null;
  }

  /** Draws the picture after a frame of the viewer's height (another write is not the viewer's). */
  private draw(lineBreaks: number | null): void {
    const s = this.shown;
    if (!s || lineBreaks !== s.frameHeight) return;
    // Ink leaves the cursor in column 0 of the row below its frame: row `frameHeight`.
    this.frames.write(drawAt(s.seq, lineBreaks - s.box.top, s.box.left));
  }
}

/** How the chat screen draws pictures, or null where it does not (and /view says why). */
export function imageOutput(
  support: ImageSupport | undefined,
  write: (s: string) => void,
): ImageOutput | null {
  const choice = support?.choice;
  if (choice?.protocol === "kitty") return new KittyOutput(write, choice.tmux);
  if (choice?.protocol === "iterm2" && support?.frames) return new Iterm2Output(support.frames);
  return null;
}
