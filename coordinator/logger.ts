// The coordinator's pino logger: structured JSON, one event per line, secrets redacted wherever they appear.
import { LogController, type FastifyReply, type FastifyRequest } from "fastify";
import { pino, type Logger } from "pino";
import type { LogLevel } from "./config/server.ts";

/** Paths of values that must never reach a log line, whatever object carries them. */
const redactedPaths = [
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

/**
 * Fastify's per-request lines ("incoming request", "request completed") at debug rather than info: at info they are
 * two serialized, redacted lines per chat, a few percent of the coordinator's CPU under load. A request that failed
 * is still logged at error, and every other error line of Fastify's is unchanged.
 */
export class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.debug({ req: request }, "incoming request");
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
    metadata?: Record<string, unknown>,
  ): void {
    if (error) {
      super.requestCompleted(error, request, reply, metadata);
      return;
    }
    if (this.isLogDisabled(request)) return;
    reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, "request completed");
  }
}
