// Container health check: GET /livez on the relay's own port, with Node alone (slim images have no
// curl). Reads the same environment as the relay; exits 0 when the relay answers 200 within 4 s.
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";

const tls = Boolean(process.env.PARLEY_RELAY_TLS_CERT);
const get = tls ? httpsGet : httpGet;
const request = get(
  {
    host: "127.0.0.1",
    port: Number(process.env.PARLEY_RELAY_PORT ?? 7700),
    path: "/livez",
    timeout: 4000,
    // The certificate names the public host, not 127.0.0.1: this check is about liveness, not identity.
    rejectUnauthorized: false,
  },
  (res) => {
    res.resume();
    process.exit(res.statusCode === 200 ? 0 : 1);
  },
);
request.on("timeout", () => request.destroy(new Error("timed out")));
request.on("error", (e) => {
  process.stderr.write(`healthcheck: ${e.message}\n`);
  process.exit(1);
});
