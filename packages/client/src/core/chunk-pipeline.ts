// Writing a blob's chunks with several in flight (PROTOCOL.md §14.2): a relay stores a chunk only
// when it is the next one, and takes the putChunk frames of a connection in the order they arrive,
// so the chunks are sent in order without waiting for each answer. A refusal stores nothing after
// it: the chunks sent behind a refused one are refused too ("ahead", or RATE_LIMITED), and the
// upload goes on from the refused chunk. Answers are taken in order, so a chunk counts as stored
// only when every chunk before it is.
import { RelayRequestError } from "../relay-connection.js";
import type { BlobLink } from "./blobs.js";

/** The most chunks in flight (sent, not answered): 1 MiB of sealed chunks held, whatever the file. */
export const UPLOAD_IN_FLIGHT = 16;
/** Chunks in flight at the start; one more with each answer, up to what the link carries. */
const FIRST_WINDOW = 4;
/**
 * The window is kept to what the link answers in about this long, so that on a slow link (a chunk
 * every second, say) the last chunk sent is not waiting for its answer near the request timeout.
 */
const WINDOW_MS = 2000;
/** First wait after the relay says the upload is going faster than its upload rate; it doubles up to the most. */
const PACE_FIRST_MS = 50;
const PACE_MOST_MS = 2000;

export interface ChunkWrite {
  readonly link: BlobLink;
  readonly blobId: Uint8Array;
  readonly writeToken: Uint8Array;
  /** The first chunk to write (the relay has those before it) and the blob's chunk count. */
  readonly from: number;
  readonly count: number;
  /**
   * Chunk `index` sealed. Asked for in increasing order, except after a refusal, when the upload
   * goes back to the refused chunk and asks for it again.
   */
  seal(index: number): Promise<Uint8Array>;
  /** The relay has stored chunks 0 … `next` - 1. */
  stored(next: number): void;
}

/**
 * Writes chunks `from` … `count` - 1, at most UPLOAD_IN_FLIGHT in flight. A relay pacing the
 * upload (§14.2, RATE_LIMITED) is waited for, and the window halved; any other refusal or a lost
 * connection is thrown, once the chunks in flight have their answers.
 */
export async function putChunks(w: ChunkWrite): Promise<void> {
  const flight: { index: number; done: Promise<void> }[] = [];
  let next = w.from;
  let window = FIRST_WINDOW;
  let pace = PACE_FIRST_MS;
  /** Average ms between two answers (0: none yet), and when the last came. */
  let interval = 0;
  let last = performance.now();
  try {
    while (flight.length > 0 || next < w.count) {
      while (flight.length < window && next < w.count) {
        const index = next++;
        const sealed = await w.seal(index);
        const done = w.link.putChunk(w.blobId, w.writeToken, index, sealed);
        done.catch(() => {}); // awaited in order below
        flight.push({ index, done });
      }
      const head = flight.shift()!;
      try {
        await head.done;
      } catch (e) {
        if (!(e instanceof RelayRequestError && e.code === "RATE_LIMITED")) throw e;
        // Nothing after the refused chunk was stored: their answers are refusals too.
        await settle(flight);
        window = Math.max(1, window >> 1);
        await new Promise((r) => setTimeout(r, pace));
        pace = Math.min(pace * 2, PACE_MOST_MS);
        next = head.index;
        last = performance.now();
        continue;
      }
      w.stored(head.index + 1);
      pace = PACE_FIRST_MS;
      const now = performance.now();
      interval = interval === 0 ? now - last : (7 * interval + (now - last)) / 8;
      last = now;
      const carried = interval > 0 ? Math.floor(WINDOW_MS / interval) : UPLOAD_IN_FLIGHT;
      window = Math.max(1, Math.min(UPLOAD_IN_FLIGHT, carried, window + 1));
    }
  } finally {
    // Whatever ended the upload, its chunks in flight are answered (or the link is gone) first.
    await settle(flight);
  }
}

async function settle(flight: { done: Promise<void> }[]): Promise<void> {
  await Promise.allSettled(flight.splice(0).map((f) => f.done));
}
