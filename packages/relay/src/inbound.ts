// What a WebSocket connection has sent that is not yet a complete message, and what holding it
// costs the relay's memory. `ws` keeps such bytes (unparsed chunks, and the fragments of a message
// that has not ended) until the message completes; its `maxPayload` bounds the payload, but not the
// bookkeeping: a message sent as one-byte fragments costs about 140 bytes of heap per 7 bytes on the
// wire (measured: 16,384 of them, ws's default fragment limit, hold 2.2 MiB). So the relay reads the
// frame headers itself, as the bytes arrive, and charges every chunk and every frame a fixed cost on
// top of its bytes, from the last point where no message was under way.

/** Charged per chunk the socket delivers (a Buffer and its ArrayBuffer: about 300 bytes measured). */
export const CHUNK_COST = 512;
/** Charged per WebSocket frame (ws keeps a view of each fragment: about 130 bytes measured). */
export const FRAME_COST = 256;

/** Frame-header parser state. */
const HEAD = 0;
const PAYLOAD = 1;

/**
 * Follows the frames of one connection's byte stream (RFC 6455 §5.2) just far enough to know where
 * messages end, and keeps `held`: the cost of everything received since the last message ended.
 */
export class InboundMeter {
  /** The cost (bytes plus the charges above) of what was received since the last message boundary. */
  held = 0;
  private state = HEAD;
  private readonly header = new Uint8Array(14);
  private have = 0;
  private need = 2;
  private remaining = 0;
  private fin = false;
  private opcode = 0;
  /** A data frame without FIN was seen: a fragmented message is under way. */
  private fragmented = false;

  /** Reads one chunk; returns the cost now held. */
  feed(chunk: Uint8Array): number {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.state === PAYLOAD) {
        const take = Math.min(this.remaining, n - i);
        this.remaining -= take;
        this.held += take;
        i += take;
        if (this.remaining === 0) this.frameDone();
        continue;
      }
      this.header[this.have++] = chunk[i++]!;
      this.held++;
      if (this.have === 2) {
        const len7 = this.header[1]! & 0x7f;
        const masked = (this.header[1]! & 0x80) !== 0;
        this.need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
      }
      if (this.have < 2 || this.have < this.need) continue;
      this.fin = (this.header[0]! & 0x80) !== 0;
      this.opcode = this.header[0]! & 0x0f;
      this.remaining = this.payloadLength();
      this.have = 0;
      this.need = 2;
      this.held += FRAME_COST;
      if (this.remaining === 0) this.frameDone();
      else this.state = PAYLOAD;
    }
    // This chunk stays referenced while anything after the last boundary is kept.
    if (this.held > 0) this.held += CHUNK_COST;
    return this.held;
  }

  private payloadLength(): number {
    const len7 = this.header[1]! & 0x7f;
    const h = this.header;
    if (len7 === 126) return (h[2]! << 8) | h[3]!;
    if (len7 === 127) {
      // ws refuses lengths above 2^53 - 1 (and the relay's maxPayload far below): exact enough here.
      const hi = ((h[2]! << 24) | (h[3]! << 16) | (h[4]! << 8) | h[5]!) >>> 0;
      const lo = ((h[6]! << 24) | (h[7]! << 16) | (h[8]! << 8) | h[9]!) >>> 0;
      return hi * 2 ** 32 + lo;
    }
    return len7;
  }

  private frameDone(): void {
    this.state = HEAD;
    const control = this.opcode >= 0x08;
    if (!control) this.fragmented = !this.fin;
    // A message ended, or a control frame arrived between messages: nothing is kept any more.
    if (!this.fragmented) this.held = 0;
  }
}
