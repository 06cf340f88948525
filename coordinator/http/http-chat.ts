// Where the HTTP chat routes join the one chat pipeline (tasks/chat-pipeline.ts) that InferenceService.Chat runs.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { ChatParams } from "../../gen/iris/v1/inference_pb.ts";
import type { ResolveHttpCaller } from "../limits/http-caller.ts";
import type { ChatPipeline } from "../tasks/chat-pipeline.ts";
import type { ChatEvent } from "../tasks/chat.ts";

export interface HttpChatDeps {
  /**
   * The chat pipeline: account key, rate limit (refusals are ConnectErrors: 401, 429 with Retry-After, …),
   * orchestrator.
   */
  chat: ChatPipeline;
  /** The caller from the request's credentials (the Connect auth interceptor does not run on these routes). */
  resolveCaller: ResolveHttpCaller;
}

/**
 * Starts the answer to `params` for the caller of `req`; the client going away cancels it (the node is told to stop).
 */
export async function startHttpChat(
  req: FastifyRequest,
  reply: FastifyReply,
  params: ChatParams,
  deps: HttpChatDeps,
  /** False when the answer goes out whole (`stream: false`): the node sends it in one result. */
  streaming = true,
): Promise<AsyncGenerator<ChatEvent>> {
  const principal = await deps.resolveCaller(req);
  const abort = new AbortController();
  // The response's close, not the request's: a request emits 'close' as soon as its body is read. After a normal end
  // (the response written whole) there is nothing to abort (the orchestrator has let go of the signal by then), and
  // not aborting saves the DOMException an abort makes: ~40 µs of CPU a request (bench:peers' profile)
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  return deps.chat(params, { principal, clientAddress: req.ip, signal: abort.signal, streaming });
}
