// Failures as OpenAI's API reports them: an HTTP status and `{"error": {message, type, param, code}}`.
import { Code, ConnectError } from "@connectrpc/connect";
import { unavailableIfDatabase } from "../db/faults.ts";
import { InvalidRequestError } from "./openai-request.ts";

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface OpenAiError {
  status: number;
  body: OpenAiErrorBody;
  headers: Record<string, string>;
}

/** How long a client told "busy" (429) should wait; OpenAI SDKs honour Retry-After up to 60 s. */
export const RETRY_AFTER_SECONDS = 5;

// Types follow OpenAI's where it has one (invalid_request_error, server_error); the codes say which case.
const byCode: Partial<Record<Code, { status: number; type: string; code: string | null }>> = {
  [Code.InvalidArgument]: { status: 400, type: "invalid_request_error", code: null },
  [Code.FailedPrecondition]: { status: 400, type: "invalid_request_error", code: null },
  [Code.Unimplemented]: { status: 400, type: "invalid_request_error", code: "unsupported" },
  [Code.Unauthenticated]: { status: 401, type: "invalid_request_error", code: "invalid_api_key" },
  [Code.PermissionDenied]: { status: 403, type: "invalid_request_error", code: "permission_denied" },
  [Code.NotFound]: { status: 404, type: "invalid_request_error", code: "model_not_found" },
  [Code.ResourceExhausted]: { status: 429, type: "rate_limit_error", code: "rate_limit_exceeded" },
  // 499: nginx's "client closed request"; nobody reads it, but the access log should not say 500
  [Code.Canceled]: { status: 499, type: "invalid_request_error", code: "client_closed_request" },
  [Code.Unavailable]: { status: 503, type: "server_error", code: "service_unavailable" },
  [Code.DeadlineExceeded]: { status: 504, type: "server_error", code: "timeout" },
};

/** Fastify's own refusals (bad JSON, body too large, wrong media type) carry a 4xx statusCode. */
function isClientHttpError(err: unknown): err is Error & { statusCode: number } {
  const status = (err as { statusCode?: unknown })?.statusCode;
  return err instanceof Error && typeof status === "number" && status >= 400 && status < 500;
}

/** The response for a failure; internal errors get a generic message (the details go to the log, not the client). */
export function openAiError(fault: unknown, requestId: string): OpenAiError {
  const err = unavailableIfDatabase(fault);
  if (err instanceof InvalidRequestError) {
    return { status: 400, body: { error: { message: err.message, type: "invalid_request_error", param: err.param, code: null } }, headers: {} };
  }
  if (isClientHttpError(err)) {
    return { status: err.statusCode, body: { error: { message: err.message, type: "invalid_request_error", param: null, code: null } }, headers: {} };
  }
  const connect = err instanceof ConnectError ? err : undefined;
  const mapped = connect ? byCode[connect.code] : undefined;
  if (!connect || !mapped) {
    const message = `the coordinator failed to answer (request id ${requestId})`;
    return { status: 500, body: { error: { message, type: "server_error", param: null, code: null } }, headers: {} };
  }
  // a rate limit knows its wait (the error's retry-after metadata); a busy network only guesses
  const headers: Record<string, string> = mapped.status === 429 ? { "retry-after": connect.metadata.get("retry-after") ?? String(RETRY_AFTER_SECONDS) } : {};
  return { status: mapped.status, body: { error: { message: connect.rawMessage, type: mapped.type, param: null, code: mapped.code } }, headers };
}
