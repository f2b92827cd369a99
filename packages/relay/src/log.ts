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
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
