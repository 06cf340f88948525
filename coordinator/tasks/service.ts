// InferenceService: Chat (server stream), ChatUnary and ListModels, all through the orchestrator.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import {
  AcceptedSchema,
  ChatResponseSchema,
  DoneSchema,
  type ChatParams,
  type ChatResponse,
  type Done,
  type InferenceService,
  type Accepted,
} from "../../gen/iris/v1/inference_pb.ts";
import { normalizeAccountKey } from "../accounts/keys.ts";
import { isAdmin, principalKey } from "../accounts/principal.ts";
import { findAccountIdCached } from "../accounts/store.ts";
import type { Database } from "../db/schema.ts";
import type { ChatLimiter } from "../limits/chat-limits.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import { clientAddressKey } from "../request-context.ts";
import { divisionModeFromProto, divisionModeToProto } from "./division/mode.ts";
import { servedModels } from "./models.ts";
import type { Orchestrator } from "./orchestrator.ts";
import type { ChatEvent, ChatInput } from "./chat.ts";
import { chatRoleFromProto, difficultyFromProto, difficultyToProto, tierToProto } from "../../common/vocabulary.ts";


/** The orchestrator's input from a request's params (account key checked, client address from the context). */
export async function chatInput(db: Kysely<Database>, params: ChatParams, ctx: HandlerContext): Promise<ChatInput> {
  let accountId: string | undefined;
  if (params.accountKey) {
    accountId = await findAccountIdCached(db, normalizeAccountKey(params.accountKey));
    if (!accountId) throw new ConnectError("account_key: unknown or revoked account key", Code.Unauthenticated);
  }
  return {
    messages: params.messages.map((m) => ({ role: chatRoleFromProto(m.role) ?? "user", content: m.content })),
    model: params.model,
    maxTokens: params.maxTokens,
    temperature: params.temperature,
    difficultyHint: difficultyFromProto(params.difficulty),
    trustedHint: isAdmin(ctx.values.get(principalKey)),
    divisionMode: divisionModeFromProto(params.divisionMode),
    consensusNodes: params.consensusNodes,
    accountId,
    clientAddress: ctx.values.get(clientAddressKey),
    signal: ctx.signal,
  };
}

function acceptedMessage(event: Extract<ChatEvent, { type: "accepted" }>): MessageInitShape<typeof AcceptedSchema> {
  return {
    taskId: event.taskId,
    difficulty: difficultyToProto[event.difficulty],
    tier: tierToProto[event.tier],
    nodeId: event.nodeId,
    divisionMode: divisionModeToProto(event.divisionMode),
    classifier: event.classifier,
    model: event.model,
  };
}

function doneMessage(event: Extract<ChatEvent, { type: "done" }>): MessageInitShape<typeof DoneSchema> {
  return {
    usage: { promptTokens: event.promptTokens, completionTokens: event.completionTokens },
    timings: { timeToFirstTokenMs: event.ttftMs, totalMs: event.totalMs, tokensPerSecond: event.tokensPerSecond },
    nodeId: event.nodeId,
    nodeIds: event.nodeIds,
    finishReason: event.finishReason,
    verified: event.verified ?? false,
  };
}

function toResponse(event: ChatEvent): ChatResponse {
  switch (event.type) {
    case "queued":
      return create(ChatResponseSchema, { event: { case: "queued", value: { position: event.position, maxWaitMs: event.maxWaitMs, estimatedWaitMs: event.estimatedWaitMs } } });
    case "accepted":
      return create(ChatResponseSchema, { event: { case: "accepted", value: acceptedMessage(event) } });
    case "token":
      return create(ChatResponseSchema, { event: { case: "token", value: { text: event.text } } });
    case "done":
      return create(ChatResponseSchema, { event: { case: "done", value: doneMessage(event) } });
  }
}

export function inferenceService(deps: {
  db: Kysely<Database>;
  orchestrator: Orchestrator;
  registry: NodeRegistry;
  limiter: ChatLimiter;
}): Partial<ServiceImpl<typeof InferenceService>> {
  /** The request checked, the caller charged one message (or refused), and the answer metered for give-backs. */
  async function admittedChat(params: ChatParams, ctx: HandlerContext): Promise<AsyncGenerator<ChatEvent>> {
    const input = await chatInput(deps.db, params, ctx);
    const caller = { principal: ctx.values.get(principalKey), requestAccountId: input.accountId, clientAddress: input.clientAddress ?? "" };
    const ticket = await deps.limiter.admit(caller);
    return deps.limiter.meter(deps.orchestrator.chat(input), ticket);
  }

  return {
    async *chat(request, ctx) {
      for await (const event of await admittedChat(request.params!, ctx)) yield toResponse(event);
    },
    async chatUnary(request, ctx) {
      let text = "";
      let accepted: Accepted | undefined;
      let done: Done | undefined;
      for await (const event of await admittedChat(request.params!, ctx)) {
        if (event.type === "token") text += event.text;
        else if (event.type === "accepted") accepted = create(AcceptedSchema, acceptedMessage(event));
        else if (event.type === "done") done = create(DoneSchema, doneMessage(event));
      }
      return { accepted, text, done };
    },
    listModels() {
      const models = servedModels(deps.registry.nodes()).map((m) => ({ ...m, bestTier: tierToProto[m.bestTier], parameterCount: BigInt(m.parameterCount) }));
      return { models };
    },
  };
}
