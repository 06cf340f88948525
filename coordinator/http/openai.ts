// The OpenAI-compatible API (`POST /v1/chat/completions`, `GET /v1/models`) over the one chat pipeline, so that
// any OpenAI SDK works against Iris unchanged.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { NodeRegistry } from "../nodes/registry.ts";
import { normalizeModelHint } from "../tasks/router.ts";
import type { ChatEvent } from "../tasks/chat.ts";
import { logHttpFailure } from "./http-failure.ts";
import { startHttpChat, type HttpChatDeps } from "./http-chat.ts";
import { openAiError, type OpenAiErrorBody } from "./openai-errors.ts";
import { parseCompletionRequest } from "./openai-request.ts";
import { SseStream } from "./sse-stream.ts";

export interface OpenAiDeps extends HttpChatDeps {
  registry: NodeRegistry;
  logger: Logger;
  /** Largest request body in bytes (Fastify's default is 1 MiB; long documents need more). */
  bodyLimit?: number;
  /**
   * A streamed request waiting in the queue keeps its HTTP status open this long, so that running out of
   * nodes is still a 429/503; after that the 200 goes out and SSE comments keep the connection alive.
   * Also the interval of keep-alive comments while no token comes. Default 15 s.
   */
  keepAliveMs?: number;
}

type Accepted = Extract<ChatEvent, { type: "accepted" }>;
type Done = Extract<ChatEvent, { type: "done" }>;

const DEFAULT_KEEP_ALIVE_MS = 15_000;
/** The model name that lets the network choose (the router also takes `iris`, `default` and ""). */
const ANY_MODEL = "auto";

/** Node finish reasons in OpenAI's vocabulary (llama.cpp and older servers say max_tokens). */
function finishReason(reason: string): "stop" | "length" {
  return reason === "length" || reason === "max_tokens" ? "length" : "stop";
}

function usage(done: Done) {
  return {
    prompt_tokens: done.promptTokens,
    completion_tokens: done.completionTokens,
    total_tokens: done.promptTokens + done.completionTokens,
  };
}

/** Iris's routing facts, as headers: OpenAI's body has no place for them and clients ignore unknown headers. */
function irisHeaders(accepted: Accepted, nodeId = accepted.nodeId): Record<string, string> {
  return {
    "x-iris-task-id": accepted.taskId,
    "x-iris-node-id": nodeId,
    "x-iris-tier": accepted.tier.toLowerCase(),
    "x-iris-difficulty": accepted.difficulty.toLowerCase(),
    "x-iris-classifier": accepted.classifier,
    "x-iris-division-mode": accepted.divisionMode ?? "single",
  };
}

/**
 * What a divided answer adds, as an `iris` field on the completion (or on the stream's last chunk): the nodes
 * that answered and, for consensus, whether a majority agreed. Absent for single answers, which are unchanged.
 */
function irisExtension(accepted: Accepted, done: Done): Record<string, unknown> {
  if ((accepted.divisionMode ?? "single") === "single") return {};
  return {
    iris: {
      division_mode: accepted.divisionMode,
      node_ids: done.nodeIds,
      ...(done.verified !== undefined ? { verified: done.verified } : {}),
    },
  };
}

function logFailure(req: FastifyRequest, err: unknown, status: number, body: OpenAiErrorBody, msg: string): void {
  logHttpFailure(req, err, status, { code: body.error.code, param: body.error.param, reason: body.error.message }, msg);
}

export function registerOpenAiRoutes(app: FastifyInstance, deps: OpenAiDeps): void {
  const keepAliveMs = deps.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
  // /v1/models has no real creation time for a model someone runs at home; this process's start is stable
  const startedAt = Math.floor(Date.now() / 1000);

  void app.register(
    async (v1) => {
      // Every failure under /v1, Fastify's own included, in OpenAI's error shape
      v1.setErrorHandler((err, req, reply) => {
        const { status, body, headers } = openAiError(err, req.id);
        logFailure(req, err, status, body, "openai api request failed");
        return reply.code(status).headers(headers).send(body);
      });
      v1.setNotFoundHandler((req, reply) =>
        reply.code(404).send({
          error: {
            message: `Unknown request URL: ${req.method} ${req.url}`,
            type: "invalid_request_error",
            param: null,
            code: "unknown_url",
          },
        }),
      );

      // `auto` (any model, the network chooses) comes first and is always there: clients that check the model
      // against this list before sending must accept the name the README and the examples use
      const model = (id: string) => ({ id, object: "model", created: startedAt, owned_by: "iris" });
      v1.get("/models", async () => ({
        object: "list",
        // the registry's model names (its nodes by model), not a reading of every node; in ListModels' order
        data: [model(ANY_MODEL), ...[...deps.registry.modelNames()].sort((a, b) => a.localeCompare(b)).map(model)],
      }));

      // Model names may contain slashes (org/model), hence the wildcard
      v1.get("/models/*", async (req, reply) => {
        const id = (req.params as { "*": string })["*"];
        // `iris`, `default` and "" mean any model too; they are answered, though only `auto` is listed
        if (normalizeModelHint(id) !== undefined && deps.registry.nodesNamed(id).size === 0) {
          return reply.code(404).send({
            error: {
              message: `The model '${id}' is not served by any connected node`,
              type: "invalid_request_error",
              param: null,
              code: "model_not_found",
            },
          });
        }
        return model(id);
      });

      v1.post("/chat/completions", deps.bodyLimit ? { bodyLimit: deps.bodyLimit } : {}, async (req, reply) => {
        const request = parseCompletionRequest(req.body);
        const events = await startHttpChat(req, reply, request.params, deps, request.stream);
        const created = Math.floor(Date.now() / 1000);
        if (request.stream)
          return streamCompletion(req, new SseStream(req, reply, keepAliveMs), events, {
            created,
            includeUsage: request.includeUsage,
          });
        return completeAtOnce(reply, events, created);
      });
    },
    { prefix: "/v1" },
  );
  deps.logger.debug({ keepAliveMs, bodyLimit: deps.bodyLimit }, "OpenAI-compatible API registered under /v1");
}

/** Non-streaming: the whole answer as one `chat.completion` object. */
async function completeAtOnce(reply: FastifyReply, events: AsyncGenerator<ChatEvent>, created: number) {
  let accepted: Accepted | undefined;
  let done: Done | undefined;
  const text: string[] = [];
  for await (const event of events) {
    if (event.type === "accepted") accepted = event;
    else if (event.type === "token") text.push(event.text);
    else if (event.type === "done") done = event;
  }
  if (!accepted || !done) throw new Error("the orchestrator ended without an answer");
  reply.headers(irisHeaders(accepted, done.nodeId));
  return {
    id: `chatcmpl-${accepted.taskId}`,
    object: "chat.completion",
    created,
    model: accepted.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: text.join(""), refusal: null },
        logprobs: null,
        finish_reason: finishReason(done.finishReason),
      },
    ],
    usage: usage(done),
    ...irisExtension(accepted, done),
  };
}

/**
 * Streaming: `chat.completion.chunk` events exactly as OpenAI sends them, then `data: [DONE]`.
 * The status line, the routing headers and the role chunk wait for the first token (or `keepAliveMs` in the queue or
 * on a node that has not begun), so a failure before any token is a real HTTP error, and the first token reaches the
 * client in the same write as the status (one wake-up of the client, not two). A failure after that is one
 * `data: {"error": {...}}` event, and the stream closes without `[DONE]`.
 */
function streamCompletion(
  req: FastifyRequest,
  sse: SseStream,
  events: AsyncGenerator<ChatEvent>,
  options: { created: number; includeUsage: boolean },
): Promise<void> {
  let accepted: Accepted | undefined;
  let position: number | undefined;
  let begun = false;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({
    id: `chatcmpl-${accepted!.taskId}`,
    object: "chat.completion.chunk",
    created: options.created,
    model: accepted!.model,
    choices,
    // OpenAI sends usage: null on every chunk but the last when usage was asked for
    ...(options.includeUsage ? { usage: null } : {}),
    ...extra,
  });
  const delta = (content: Record<string, string>, finish: string | null = null) => [
    { index: 0, delta: content, logprobs: null, finish_reason: finish },
  ];
  /** The 200 with the node's routing headers (unless a queue's comment sent it), and OpenAI's first chunk. */
  const begin = async () => {
    if (begun) return;
    begun = true;
    sse.commit(irisHeaders(accepted!));
    await sse.data(chunk(delta({ role: "assistant", content: "" })));
  };
  return sse.send(events, {
    async write(event) {
      if (event.type === "queued") {
        position = event.position;
        if (sse.committed) await sse.comment(`queued position ${position}`);
      } else if (event.type === "accepted") {
        accepted = event; // held until the first token (or keepAliveMs): begin()
        position = undefined;
      } else if (event.type === "token") {
        position = undefined; // a failover's wait is over
        await begin();
        await sse.data(chunk(delta({ content: event.text })));
      } else {
        await begin(); // an empty answer
        await sse.data(chunk(delta({}, finishReason(event.finishReason)), irisExtension(accepted!, event)));
        if (options.includeUsage) await sse.data(chunk([], { usage: usage(event) }));
      }
    },
    // the first comment commits the 200: a queued request has held its status for keepAliveMs; so has one whose node
    // has sent no token yet, which begins now
    idle: () => {
      if (position !== undefined) return `queued position ${position}`;
      if (accepted) void begin();
      return "keep-alive";
    },
    finish: () => sse.data("[DONE]"),
    async failed(err) {
      const { status, body } = openAiError(err, req.id);
      logFailure(req, err, status, body, "chat completion stream ended with an error event");
      await sse.data(body);
    },
  });
}
