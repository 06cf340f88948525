// The coordinator's pino logger: structured JSON, one event per line, secrets redacted wherever they appear.
import { pino, type Logger } from "pino";
import type { LogLevel } from "./config.ts";

/** Paths of values that must never reach a log line, whatever object carries them. */
export const redactedPaths = [
  "req.headers.authorization",
  "req.headers.cookie",
  "*.authorization",
  "*.password",
  "*.accountKey",
  "*.account_key",
  "*.jwtSecret",
  "*.privateKey",
  "*.token",
  "*.accessToken",
];

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      name: "iris-coordinator",
      level,
      redact: { paths: redactedPaths, censor: "[redacted]" },
      base: { pid: process.pid },
    },
    destination,
  );
}
