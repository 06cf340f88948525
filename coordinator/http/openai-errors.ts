// Failures as OpenAI's API reports them: the status of http-failure.ts and `{"error": {message, type, param, code}}`.
import { httpFailure } from "./http-failure.ts";

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface OpenAiError {
  status: number;
  body: OpenAiErrorBody;
  headers: Record<string, string>;
}

// OpenAI's codes, by status (its API is HTTP's: a client reads the status first); other statuses have none
const codes = new Map<number, string>([
  [401, "invalid_api_key"],
  [403, "permission_denied"],
  [404, "model_not_found"],
  [429, "rate_limit_exceeded"],
  // 499: nginx's "client closed request"; nobody reads it, but the access log should not say 500
  [499, "client_closed_request"],
  [501, "unsupported"],
  [503, "service_unavailable"],
  [504, "timeout"],
]);

/** Types follow OpenAI's: SDKs raise their RateLimitError for rate_limit_error, and retry server_error. */
function errorType(status: number): string {
  if (status === 429) return "rate_limit_error";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

/** The response for a failure; internal errors get a generic message (the details go to the log, not the client). */
export function openAiError(fault: unknown, requestId: string): OpenAiError {
  const { status, message, field, headers } = httpFailure(fault, requestId);
  return {
    status,
    body: { error: { message, type: errorType(status), param: field ?? null, code: codes.get(status) ?? null } },
    headers,
  };
}
