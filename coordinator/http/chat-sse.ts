// `POST /api/chat/stream`: chat as server-sent events with named events, for plain browsers (fetch) and `curl -N`.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ChatEvent } from "../tasks/chat.ts";
import { chatStreamError, type ChatStreamError } from "./chat-stream-error.ts";
import { parseChatStreamBody } from "./chat-sse-request.ts";
import { logHttpFailure } from "./http-failure.ts";
import { startHttpChat, type HttpChatDeps } from "./http-chat.ts";
import { SseStream } from "./sse-stream.ts";

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

export interface ChatSseDeps extends HttpChatDeps {
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

function logFailure(req: FastifyRequest, err: unknown, status: number, body: ChatStreamError, msg: string): void {
  logHttpFailure(req, err, status, { code: body.code, field: body.field, reason: body.message }, msg);
}

/** An event's JSON: snake_case like the rest of Iris's JSON, lower-case enums. */
function payload(event: ChatEvent): Record<string, unknown> {
  switch (event.type) {
    case "queued":
      return {
        position: event.position,
        max_wait_ms: event.maxWaitMs,
        ...(event.estimatedWaitMs !== undefined ? { estimated_wait_ms: event.estimatedWaitMs } : {}),
      };
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
        usage: {
          prompt_tokens: event.promptTokens,
          completion_tokens: event.completionTokens,
          total_tokens: event.promptTokens + event.completionTokens,
        },
        timings: {
          time_to_first_token_ms: event.ttftMs,
          total_ms: event.totalMs,
          tokens_per_second: event.tokensPerSecond,
        },
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
      const params = parseChatStreamBody(req.body);
      const events = await startHttpChat(req, reply, params, deps);
      const sse = new SseStream(req, reply, keepAliveMs);
      // The stream starts with the orchestrator's first event, so a refusal at once (unknown model, full queue) is
      // still an HTTP status; keep-alive comments only after that
      await sse.send(events, {
        write: (event) => sse.event(event.type, payload(event)),
        idle: () => (sse.committed ? "keep-alive" : undefined),
        async failed(err) {
          const { status, body } = chatStreamError(err, req.id);
          logFailure(req, err, status, body, "chat stream ended with an error event");
          await sse.event("error", body);
        },
      });
    });
  });
}
