// The baseline for relay-bench.ts: a bare `ws` forwarder, run as its own process. No storage, no
// crypto, no auth, no acks of its own: it only moves bytes from one socket to another.
//
//   - A frame of type 0x04 (the shape of a relay `subscribe`; the signature is ignored) registers the
//     sending socket as the target for the 32-byte address at offset 6. It is answered with an `ok`
//     frame carrying the same request id, so the load generator knows the registration is in place.
//   - A frame of type 0x03 (a relay `deposit`) is forwarded unchanged to the socket registered for
//     its address (offset 6); a deposit for an unknown address is dropped.
//   - Anything else (the subscribers' acks) is read and dropped.
//
// Prints one JSON line {"port":N,"msg":"bare listening"} once it listens on 127.0.0.1. Exits on
// SIGTERM/SIGINT, and when its stdin closes (the parent benchmark went away).
import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";

const targets = new Map<string, WebSocket>();
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: 1024 * 1024,
});

wss.on("connection", (ws) => {
  ws.on("error", () => ws.terminate());
  ws.on("message", (data: Buffer, isBinary) => {
    if (!isBinary || data.length < 38) return;
    const type = data[1];
    if (type === 0x03) {
      targets.get(data.toString("latin1", 6, 38))?.send(data);
    } else if (type === 0x04) {
      const key = data.toString("latin1", 6, 38);
      targets.set(key, ws);
      ws.once("close", () => {
        if (targets.get(key) === ws) targets.delete(key);
      });
      const ok = Buffer.alloc(6);
      ok[0] = 1;
      ok[1] = 0x82;
      data.copy(ok, 2, 2, 6);
      ws.send(ok);
    }
  });
});

wss.on("listening", () => {
  const { port } = wss.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ port, pid: process.pid, msg: "bare listening" })}\n`);
});

const stop = () => {
  wss.close();
  process.exit(0);
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
