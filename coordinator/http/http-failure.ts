// The one translation of a failure into HTTP for every plain HTTP route: Connect's own code → status mapping (the
// one its protocol uses on this very port), the 429's wait, and what of an unexpected failure the client may see.
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import type { FastifyRequest } from "fastify";
import { unavailableIfDatabase } from "../db/faults.ts";
import { InvalidFieldError } from "./invalid-field-error.ts";

/** How long a client told "busy" (429) should wait when the refusal names no wait; OpenAI SDKs honour up to 60 s. */
const RETRY_AFTER_SECONDS = 5;

export interface HttpFailure {
  status: number;
  /** Internal for a failure that is the coordinator's (status 500): a bug or anything unexpected. */
  code: Code;
  /** What the client reads; for an internal failure only the request id (the details go to the log). */
  message: string;
  /** The body's field (or the header) at fault, for a refused body; null for the body as a whole. */
  field?: string | null;
  /** A 429's wait: the rate limit's own, else RETRY_AFTER_SECONDS; also the Retry-After header. */
  retryAfterSeconds?: number;
  headers: Record<string, string>;
}

const NOT_JSON = "send the body as JSON with the header content-type: application/json";

/** Fastify's own refusals (malformed JSON, a body too large, a media type it cannot parse) carry a 4xx statusCode. */
function clientHttpStatus(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown })?.statusCode;
  return err instanceof Error && typeof status === "number" && status >= 400 && status < 500 ? status : undefined;
}

export function httpFailure(fault: unknown, requestId: string): HttpFailure {
  const err = unavailableIfDatabase(fault);
  if (err instanceof InvalidFieldError)
    return { status: 400, code: Code.InvalidArgument, message: err.message, field: err.field, headers: {} };
  const clientStatus = clientHttpStatus(err);
  if (clientStatus !== undefined) {
    if (clientStatus === 415)
      return { status: 415, code: Code.InvalidArgument, message: NOT_JSON, field: "content-type", headers: {} };
    const code =
      err instanceof ConnectError ? err.code : clientStatus === 413 ? Code.ResourceExhausted : Code.InvalidArgument;
    return {
      status: clientStatus,
      code,
      message: err instanceof ConnectError ? err.rawMessage : (err as Error).message,
      headers: {},
    };
  }
  const status = err instanceof ConnectError ? codeToHttpStatus(err.code) : 500;
  if (!(err instanceof ConnectError) || status === 500) {
    return {
      status: 500,
      code: Code.Internal,
      message: `the coordinator failed to answer (request id ${requestId})`,
      headers: {},
    };
  }
  if (err.code !== Code.ResourceExhausted) return { status, code: err.code, message: err.rawMessage, headers: {} };
  // a rate limit knows its wait (the error's retry-after metadata); a busy network only guesses
  const retryAfter = err.metadata.get("retry-after") ?? String(RETRY_AFTER_SECONDS);
  return {
    status,
    code: err.code,
    message: err.rawMessage,
    retryAfterSeconds: Number(retryAfter),
    headers: { "retry-after": retryAfter },
  };
}

/**
 * Only a 500 (a bug or an unexpected failure) is an error with its stack; no node, a deadline or a busy network
 * is the network's state (warn), a refused request the client's business (info). Never the prompt. `fields` are
 * the route's own words for the failure (its code, the field at fault, the reason).
 */
export function logHttpFailure(
  req: FastifyRequest,
  err: unknown,
  status: number,
  fields: Record<string, unknown>,
  msg: string,
): void {
  if (status === 500) req.log.error({ err }, msg);
  else req.log[status > 500 ? "warn" : "info"]({ status, ...fields }, msg);
}
