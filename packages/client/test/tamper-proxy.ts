// A relay seen through a proxy that alters one bit of one chunk on its way to a client: what a
// relay whose storage was altered, or a network, would deliver (PROTOCOL.md §14.4). Used by the
// in-process file tests and by the CLI's end-to-end test in tests/.
import { createServer, request } from "node:http";
import WebSocket, { WebSocketServer } from "ws";

/**
 * A relay seen through a proxy that alters one thing: the sealed bytes of chunk `index` in every
 * `chunk` frame (PROTOCOL.md §8.2 0x86) it passes to a client, one bit flipped, as a relay whose
 * storage was altered, or a network, would deliver it. Everything else, HTTP included, goes through.
 */
export async function tamperingProxy(
  relayPort: number,
  index: number,
): Promise<{ url: string; close(): void }> {
  const server = createServer((req, res) => {
    const up = request(
      { host: "127.0.0.1", port: relayPort, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    req.pipe(up);
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (client) => {
      const relay = new WebSocket(`ws://127.0.0.1:${relayPort}${req.url ?? "/"}`);
      const queued: Buffer[] = [];
      relay.on("open", () => {
        for (const q of queued.splice(0)) relay.send(q);
      });
      client.on("message", (d) =>
        relay.readyState === WebSocket.OPEN ? relay.send(d as Buffer) : queued.push(d as Buffer),
      );
      relay.on("message", (d) => {
        const b = Buffer.from(d as Buffer);
        // header: version, type, request id (u32); a chunk's body: index (u32), sealed chunk
        if (b[1] === 0x86 && b.readUInt32BE(6) === index) b[10 + 100]! ^= 0x04;
        client.send(b);
      });
      client.on("close", () => relay.close());
      relay.on("close", () => client.close());
      relay.on("error", () => client.terminate());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () => {
      for (const c of wss.clients) c.terminate();
      server.close();
    },
  };
}
