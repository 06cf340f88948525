// The OpenAI-compatible API (`POST /v1/chat/completions`, `GET /v1/models`) over the orchestrator, so that
// any OpenAI SDK works against Iris unchanged.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { NodeRegistry } from "../nodes/registry.ts";
import { servedModels } from "../tasks/models.ts";
import { normalizeModelHint } from "../tasks/router.ts";
import type { Orchestrator } from "../tasks/orchestrator.ts";
import type { ChatEvent, ChatInput } from "../tasks/chat.ts";
import { openAiError, type OpenAiErrorBody } from "./openai-errors.ts";
import { parseCompletionRequest, type CompletionRequest } from "./openai-request.ts";
import { SseResponse } from "./sse.ts";

/** Who is asking, as the admission hook decided. */
export interface Admission {
  accountId?: string;
  /** The caller may set any difficulty (an admin's token), as over gRPC; others' hints may only raise it. */
  trustedHint?: boolean;
  /** Wraps the orchestrator's events, e.g. to give a rate-limit charge back when the network could not answer. */
  wrapEvents?: (events: AsyncGenerator<ChatEvent>) => AsyncGenerator<ChatEvent>;
}

export interface OpenAiDeps {
  orchestrator: Pick<Orchestrator, "chat">;
  registry: NodeRegistry;
  logger: Logger;
  /** Largest request body in bytes (Fastify's default is 1 MiB; long documents need more). */
  bodyLimit?: number;
  /**
   * The seam for authentication and rate limits (coordinator/limits/): runs after the body is validated and
   * before the orchestrator sees the request. Refuse by throwing a ConnectError — Unauthenticated becomes
   * 401, ResourceExhausted 429 with Retry-After — or admit, naming the caller's account.
   */
  admit?: (req: FastifyRequest, request: CompletionRequest) => Promise<Admission>;
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
const idle = Symbol("idle");

/** Node finish reasons in OpenAI's vocabulary (llama.cpp and older servers say max_tokens). */
function finishReason(reason: string): "stop" | "length" {
  return reason === "length" || reason === "max_tokens" ? "length" : "stop";
}

function usage(done: Done) {
  return { prompt_tokens: done.promptTokens, completion_tokens: done.completionTokens, total_tokens: done.promptTokens + done.completionTokens };
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
  return { iris: { division_mode: accepted.divisionMode, node_ids: done.nodeIds, ...(done.verified !== undefined ? { verified: done.verified } : {}) } };
}

/**
 * Only a 500 (a bug or an unexpected failure) is an error with its stack; no node, a deadline or a busy
 * network is the network's state (warn), a refused request the client's business (info). Never the prompt.
 */
function logFailure(req: FastifyRequest, err: unknown, status: number, body: OpenAiErrorBody, msg: string): void {
  if (status === 500) req.log.error({ err }, msg);
  else req.log[status > 500 ? "warn" : "info"]({ status, code: body.error.code, param: body.error.param, reason: body.error.message }, msg);
}

/** The next event, or `idle` when none came within `ms`. */
async function within<T>(next: Promise<T>, ms: number): Promise<T | typeof idle> {
  let timer: NodeJS.Timeout | undefined;
  const tick = new Promise<typeof idle>((resolve) => (timer = setTimeout(resolve, ms, idle)));
  try {
    return await Promise.race([next, tick]);
  } finally {
    clearTimeout(timer);
  }
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
        reply.code(404).send({ error: { message: `Unknown request URL: ${req.method} ${req.url}`, type: "invalid_request_error", param: null, code: "unknown_url" } }),
      );

      // `auto` (any model, the network chooses) comes first and is always there: clients that check the model
      // against this list before sending must accept the name the README and the examples use
      const model = (id: string) => ({ id, object: "model", created: startedAt, owned_by: "iris" });
      v1.get("/models", async () => ({
        object: "list",
        data: [model(ANY_MODEL), ...servedModels(deps.registry.nodes()).map((m) => model(m.name))],
      }));

      // Model names may contain slashes (org/model), hence the wildcard
      v1.get("/models/*", async (req, reply) => {
        const id = (req.params as { "*": string })["*"];
        // `iris`, `default` and "" mean any model too; they are answered, though only `auto` is listed
        if (normalizeModelHint(id) !== undefined && !servedModels(deps.registry.nodes()).some((m) => m.name === id)) {
          return reply.code(404).send({ error: { message: `The model '${id}' is not served by any connected node`, type: "invalid_request_error", param: null, code: "model_not_found" } });
        }
        return model(id);
      });

      v1.post("/chat/completions", deps.bodyLimit ? { bodyLimit: deps.bodyLimit } : {}, async (req, reply) => {
        const request = parseCompletionRequest(req.body);
        const admission = (await deps.admit?.(req, request)) ?? {};
        const abort = new AbortController();
        // The response's close, not the request's: a request emits 'close' as soon as its body is read.
        // After a normal end the abort is a no-op (the orchestrator has let go of the signal by then).
        reply.raw.once("close", () => abort.abort());
        const input: ChatInput = { ...request.input, accountId: admission.accountId, trustedHint: admission.trustedHint === true, clientAddress: req.ip, signal: abort.signal };
        const chat = deps.orchestrator.chat(input);
        const events = admission.wrapEvents?.(chat) ?? chat;
        const created = Math.floor(Date.now() / 1000);
        if (request.stream) return streamCompletion(req, reply, events, { created, includeUsage: request.includeUsage, keepAliveMs });
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
    choices: [{ index: 0, message: { role: "assistant", content: text.join(""), refusal: null }, logprobs: null, finish_reason: finishReason(done.finishReason) }],
    usage: usage(done),
    ...irisExtension(accepted, done),
  };
}

/**
 * Streaming: `chat.completion.chunk` events exactly as OpenAI sends them, then `data: [DONE]`.
 * The status line waits for a node (or `keepAliveMs` in the queue), so an early failure is a real HTTP error.
 * A failure after that is one `data: {"error": {...}}` event, and the stream closes without `[DONE]`.
 */
async function streamCompletion(
  req: FastifyRequest,
  reply: FastifyReply,
  events: AsyncGenerator<ChatEvent>,
  options: { created: number; includeUsage: boolean; keepAliveMs: number },
): Promise<void> {
  const sse = new SseResponse(req, reply);
  let accepted: Accepted | undefined;
  let position: number | undefined;
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
  const delta = (content: Record<string, string>, finish: string | null = null) => [{ index: 0, delta: content, logprobs: null, finish_reason: finish }];
  try {
    let pending: Promise<IteratorResult<ChatEvent>> | undefined;
    for (;;) {
      pending ??= events.next();
      const step = await within(pending, options.keepAliveMs);
      if (step === idle) {
        await sse.comment(position !== undefined ? `queued position ${position}` : "keep-alive");
        continue;
      }
      pending = undefined;
      if (step.done) break;
      const event = step.value;
      if (event.type === "queued") {
        position = event.position;
        if (sse.committed) await sse.comment(`queued position ${position}`);
      } else if (event.type === "accepted") {
        accepted = event;
        position = undefined;
        sse.commit(irisHeaders(event));
        await sse.data(chunk(delta({ role: "assistant", content: "" })));
      } else if (event.type === "token") {
        position = undefined; // a failover's wait is over
        await sse.data(chunk(delta({ content: event.text })));
      } else {
        await sse.data(chunk(delta({}, finishReason(event.finishReason)), irisExtension(accepted!, event)));
        if (options.includeUsage) await sse.data(chunk([], { usage: usage(event) }));
      }
    }
    await sse.data("[DONE]");
  } catch (err) {
    if (!sse.committed) throw err; // still a plain HTTP response: the error handler answers with a status
    const { status, body } = openAiError(err, req.id);
    logFailure(req, err, status, body, "chat completion stream ended with an error event");
    if (sse.open) await sse.data(body);
  } finally {
    // however the loop ended, the orchestrator must let go: a generator left suspended would keep the node busy
    await events.return(undefined);
    if (sse.committed) sse.end();
  }
}
