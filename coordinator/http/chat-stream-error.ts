// Failures as `POST /api/chat/stream` reports them: the status of http-failure.ts and Connect's JSON error object.
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { httpFailure } from "./http-failure.ts";

/** The body of a refusal before the stream, and the data of the `error` event after it began. */
export interface ChatStreamError {
  code: string;
  message: string;
  field?: string | null;
  retry_after_seconds?: number;
}

/** The HTTP status, JSON body and headers for a failure; internal errors get a generic message. */
export function chatStreamError(
  fault: unknown,
  requestId: string,
): { status: number; body: ChatStreamError; headers: Record<string, string> } {
  const failure = httpFailure(fault, requestId);
  const body: ChatStreamError = { code: codeToString(failure.code), message: failure.message };
  if (failure.field !== undefined) body.field = failure.field;
  if (failure.retryAfterSeconds !== undefined) body.retry_after_seconds = failure.retryAfterSeconds;
  return { status: failure.status, body, headers: failure.headers };
}
