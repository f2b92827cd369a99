// Structured logs. Nothing that identifies a user is ever passed to the logger: no IP addresses,
// no mailbox addresses, no payloads; the redaction paths are a second line of defence.
import pino from "pino";
import type { LogLevel } from "./config.js";

export type Logger = pino.Logger;

export function createLogger(
  level: LogLevel,
  destination: pino.DestinationStream = pino.destination(1),
): Logger {
  return pino(
    {
      name: "parley-relay",
      level,
      base: undefined,
      redact: {
        paths: [
          "ip",
          "remoteAddress",
          "address",
          "mailbox",
          "ciphertext",
          "payload",
          "*.ip",
          "*.remoteAddress",
          "*.address",
          // ioredis attaches the failed command to its errors: key names (with mailbox addresses)
          // and arguments (ciphertext). The storage never passes those on; this is the second line.
          "command",
          "args",
          "*.command",
          "*.args",
          "*.cause.command",
          "*.cause.args",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
