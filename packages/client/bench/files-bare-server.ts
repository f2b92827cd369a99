// The baseline's far end for files-bench.ts, in a process of its own as the relay is: a bare `ws`
// server that does what a relay must at the least to move a file's chunks, and nothing else. A
// put frame (type 1) is answered with a 5-byte ack; a get frame (type 2) is answered
// with a frame the size of a relay's full chunk reply, its payload copied into a fresh buffer as a
// relay's read from storage would be. Prints its port on stdout.
import { WebSocketServer } from "ws";

/** The payload of a full chunk reply: a sealed 64 KiB chunk (65 552 bytes) and its frame's fields. */
const FRAME_BYTES = Number(process.argv[2] ?? 65_626);
const payload = Buffer.alloc(FRAME_BYTES, 0x5a);

const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", maxPayload: 2 * FRAME_BYTES });
wss.on("connection", (ws) => {
  ws.on("message", (data: Buffer) => {
    const type = data[0];
    const index = data.readUInt32BE(1);
    if (type === 1) {
      const ack = Buffer.allocUnsafe(5);
      ack[0] = 1;
      ack.writeUInt32BE(index, 1);
      ws.send(ack);
    } else if (type === 2) {
      const reply = Buffer.allocUnsafe(FRAME_BYTES);
      payload.copy(reply);
      reply[0] = 2;
      reply.writeUInt32BE(index, 1);
      ws.send(reply);
    }
  });
});
wss.on("listening", () => {
  const addr = wss.address();
  if (addr !== null && typeof addr === "object")
    process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
});
process.on("SIGTERM", () => {
  wss.close();
  process.exit(0);
});
