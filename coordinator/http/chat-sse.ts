// `POST /api/chat/stream`: chat as server-sent events with named events, for plain browsers (fetch) and `curl -N`.
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import { normalizeAccountKey } from "../accounts/keys.ts";
import { findAccountIdCached } from "../accounts/store.ts";
import { unavailableIfDatabase } from "../db/faults.ts";
import type { Database } from "../db/schema.ts";
import type { Orchestrator } from "../tasks/orchestrator.ts";
import type { ChatEvent } from "../tasks/chat.ts";
import { InvalidChatBodyError, parseChatStreamBody } from "./chat-sse-request.ts";
import type { Admission } from "./openai.ts";
import { RETRY_AFTER_SECONDS } from "./openai-errors.ts";
import { SseResponse } from "./sse.ts";

/*
 * Wire format: `event: <name>` + one `data: <json>` line per event, flushed as it happens:
 *   queued   {"position", "max_wait_ms", "estimated_wait_ms"?} while no capable node is free (again every few s)
 *   accepted {"task_id", "difficulty", "tier", "node_id", "model", "classifier", "division_mode"}
 *   token    {"text"}                                    one per chunk the node streams
 *   done     {"task_id", "usage", "timings", "node_id", "node_ids", "finish_reason", "verified"}
 *   error    {"code", "message", "retry_after_seconds"?} a failure after the stream began; nothing follows
 * A refusal before the stream (bad body, unknown key, rate limit, unknown model, no capable node online, a
 * conversation too long for every online node, full queue) is a plain HTTP
 * error with the same JSON object (plus `field` for a bad body) and, for 429, a Retry-After header.
 */

export const CHAT_STREAM_PATH = "/api/chat/stream";

export interface ChatSseDeps {
  orchestrator: Pick<Orchestrator, "chat">;
  db: Kysely<Database>;
  /**
   * Authentication and rate limits: refuse by throwing a ConnectError (ResourceExhausted → 429 with the
   * error's retry-after), or admit. `requestAccountId` is the account of the body's account_key.
   */
  admit?: (req: FastifyRequest, requestAccountId: string | undefined) => Promise<Admission>;
  bodyLimit?: number;
  /** Interval of keep-alive comments, so proxies do not time out a stream waiting in the queue. Default 15 s. */
  keepAliveMs?: number;
}

/** application/json, with parameters (charset) or without. */
function isJson(contentType: string | undefined): boolean {
  return /^application\/json\s*(;|$)/i.test(contentType ?? "");
}

/** A body that is not JSON, as Fastify reports one (statusCode 415), whatever its content type. */
class UnsupportedMediaTypeError extends Error {
  readonly statusCode = 415;
  constructor() {
    super("unsupported media type");
    this.name = "UnsupportedMediaTypeError";
  }
}

export interface ChatStreamError {
  code: string;
  message: string;
  field?: string | null;
  retry_after_seconds?: number;
}

/** The HTTP status, JSON body and headers for a failure; internal errors get a generic message. */
export function chatStreamError(fault: unknown, requestId: string): { status: number; body: ChatStreamError; headers: Record<string, string> } {
  const err = unavailableIfDatabase(fault);
  if (err instanceof InvalidChatBodyError) return { status: 400, body: { code: "invalid_argument", message: err.message, field: err.field }, headers: {} };
  const status = (err as { statusCode?: unknown })?.statusCode;
  if (err instanceof Error && typeof status === "number" && status >= 400 && status < 500) {
    // Fastify's own refusals: malformed JSON, a body too large, or curl's default form content type
    const message = status === 415 ? "send the body as JSON with the header content-type: application/json" : err.message;
    const field = status === 415 ? { field: "content-type" } : {};
    return { status, body: { code: status === 413 ? "resource_exhausted" : "invalid_argument", message, ...field }, headers: {} };
  }
  // a 5xx other than no node (503) or a deadline (504) is a bug or an internal failure: its details go to the log only
  if (!(err instanceof ConnectError) || (codeToHttpStatus(err.code) >= 500 && err.code !== Code.Unavailable && err.code !== Code.DeadlineExceeded)) {
    return { status: 500, body: { code: "internal", message: `the coordinator failed to answer (request id ${requestId})` }, headers: {} };
  }
  const body: ChatStreamError = { code: codeToString(err.code), message: err.rawMessage };
  const headers: Record<string, string> = {};
  if (err.code === Code.ResourceExhausted) {
    // a rate limit knows its wait; a busy network only guesses
    headers["retry-after"] = err.metadata.get("retry-after") ?? String(RETRY_AFTER_SECONDS);
    body.retry_after_seconds = Number(headers["retry-after"]);
  }
  return { status: codeToHttpStatus(err.code), body, headers };
}

function logFailure(req: FastifyRequest, err: unknown, status: number, body: ChatStreamError, msg: string): void {
  if (status >= 500 && body.code === "internal") req.log.error({ err }, msg);
  else req.log[status >= 500 ? "warn" : "info"]({ status, code: body.code, field: body.field, reason: body.message }, msg);
}

/** An event's JSON: snake_case like the rest of Iris's JSON, lower-case enums. */
function payload(event: ChatEvent): Record<string, unknown> {
  switch (event.type) {
    case "queued":
      return { position: event.position, max_wait_ms: event.maxWaitMs, ...(event.estimatedWaitMs !== undefined ? { estimated_wait_ms: event.estimatedWaitMs } : {}) };
    case "accepted":
      return {
        task_id: event.taskId,
        difficulty: event.difficulty.toLowerCase(),
        tier: event.tier.toLowerCase(),
        node_id: event.nodeId,
        model: event.model,
        classifier: event.classifier,
        division_mode: event.divisionMode ?? "single",
      };
    case "token":
      return { text: event.text };
    case "done":
      return {
        task_id: event.taskId,
        usage: { prompt_tokens: event.promptTokens, completion_tokens: event.completionTokens, total_tokens: event.promptTokens + event.completionTokens },
        timings: { time_to_first_token_ms: event.ttftMs, total_ms: event.totalMs, tokens_per_second: event.tokensPerSecond },
        node_id: event.nodeId,
        node_ids: event.nodeIds,
        finish_reason: event.finishReason,
        verified: event.verified ?? false,
      };
  }
}

export function registerChatSseRoutes(app: FastifyInstance, deps: ChatSseDeps): void {
  const keepAliveMs = deps.keepAliveMs ?? 15_000;
  void app.register(async (scope) => {
    scope.setErrorHandler((err, req, reply) => {
      const { status, body, headers } = chatStreamError(err, req.id);
      logFailure(req, err, status, body, "chat stream refused");
      return reply.code(status).headers(headers).send(body);
    });

    // JSON only, refused before the body is read: Fastify would parse text/plain into a string (a 400 then)
    scope.addHook("onRequest", async (req) => {
      if (!isJson(req.headers["content-type"])) throw new UnsupportedMediaTypeError();
    });

    scope.post(CHAT_STREAM_PATH, deps.bodyLimit ? { bodyLimit: deps.bodyLimit } : {}, async (req, reply) => {
      const request = parseChatStreamBody(req.body);
      let requestAccountId: string | undefined;
      if (request.accountKey !== undefined) {
        requestAccountId = await findAccountIdCached(deps.db, normalizeAccountKey(request.accountKey));
        if (requestAccountId === undefined) throw new ConnectError("account_key: unknown or revoked account key", Code.Unauthenticated);
      }
      const admission = (await deps.admit?.(req, requestAccountId)) ?? { accountId: requestAccountId };
      const abort = new AbortController();
      // the response's close, not the request's (which closes once its body is read); a no-op after a normal end
      reply.raw.once("close", () => abort.abort());
      const chat = deps.orchestrator.chat({ ...request.input, accountId: admission.accountId, trustedHint: admission.trustedHint === true, clientAddress: req.ip, signal: abort.signal });
      await streamChat(req, reply, admission.wrapEvents?.(chat) ?? chat, keepAliveMs);
    });
  });
}

/** The stream starts with the orchestrator's first event, so a refusal at once (unknown model, full queue) is still an HTTP status. */
async function streamChat(req: FastifyRequest, reply: FastifyReply, events: AsyncGenerator<ChatEvent>, keepAliveMs: number): Promise<void> {
  const sse = new SseResponse(req, reply);
  let keepAlive: NodeJS.Timeout | undefined;
  try {
    let step = await events.next();
    sse.commit();
    keepAlive = setInterval(() => void sse.comment("keep-alive"), keepAliveMs).unref();
    for (; !step.done; step = await events.next()) {
      await sse.event(step.value.type, payload(step.value));
    }
  } catch (err) {
    if (!sse.committed) throw err;
    const { status, body } = chatStreamError(err, req.id);
    logFailure(req, err, status, body, "chat stream ended with an error event");
    if (sse.open) await sse.event("error", body);
  } finally {
    clearInterval(keepAlive);
    // however the loop ended, the orchestrator must let go: a suspended generator would keep the node busy
    await events.return(undefined);
    if (sse.committed) sse.end();
  }
}
