// InferenceService: Chat (server stream), ChatUnary and ListModels, all through the orchestrator.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import { Difficulty as DifficultyEnum, DivisionMode, Role, Tier } from "../../gen/iris/v1/common_pb.ts";
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
import { findAccountId } from "../accounts/store.ts";
import type { Database, Difficulty, NodeTier } from "../db/schema.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import { clientAddressKey } from "../request-context.ts";
import { servedModels } from "./models.ts";
import type { ChatEvent, ChatInput, Orchestrator } from "./orchestrator.ts";

export const tierEnum: Record<NodeTier, Tier> = { BASIC: Tier.BASIC, MID: Tier.MID, PRO: Tier.PRO };
export const difficultyEnum: Record<Difficulty, DifficultyEnum> = {
  SIMPLE: DifficultyEnum.SIMPLE,
  COMPLEX: DifficultyEnum.COMPLEX,
  ADVANCED: DifficultyEnum.ADVANCED,
};
const difficultyName: Partial<Record<DifficultyEnum, Difficulty>> = {
  [DifficultyEnum.SIMPLE]: "SIMPLE",
  [DifficultyEnum.COMPLEX]: "COMPLEX",
  [DifficultyEnum.ADVANCED]: "ADVANCED",
};
const roleName = { [Role.SYSTEM]: "system", [Role.USER]: "user", [Role.ASSISTANT]: "assistant" } as const;

/** The orchestrator's input from a request's params (account key checked, client address from the context). */
export async function chatInput(db: Kysely<Database>, params: ChatParams, ctx: HandlerContext): Promise<ChatInput> {
  if (params.divisionMode !== DivisionMode.UNSPECIFIED && params.divisionMode !== DivisionMode.SINGLE) {
    throw new ConnectError("division_mode: only single is available on this coordinator yet", Code.Unimplemented);
  }
  let accountId: string | undefined;
  if (params.accountKey) {
    accountId = await findAccountId(db, normalizeAccountKey(params.accountKey));
    if (!accountId) throw new ConnectError("account_key: unknown or revoked account key", Code.Unauthenticated);
  }
  return {
    messages: params.messages.map((m) => ({ role: roleName[m.role as Role.SYSTEM | Role.USER | Role.ASSISTANT], content: m.content })),
    model: params.model,
    maxTokens: params.maxTokens,
    temperature: params.temperature,
    difficultyHint: difficultyName[params.difficulty],
    accountId,
    clientAddress: ctx.values.get(clientAddressKey),
    signal: ctx.signal,
  };
}

function acceptedMessage(event: Extract<ChatEvent, { type: "accepted" }>): MessageInitShape<typeof AcceptedSchema> {
  return {
    taskId: event.taskId,
    difficulty: difficultyEnum[event.difficulty],
    tier: tierEnum[event.tier],
    nodeId: event.nodeId,
    divisionMode: DivisionMode.SINGLE,
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
    verified: false,
  };
}

function toResponse(event: ChatEvent): ChatResponse {
  switch (event.type) {
    case "queued":
      return create(ChatResponseSchema, { event: { case: "queued", value: { position: event.position, maxWaitMs: event.maxWaitMs } } });
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
}): Partial<ServiceImpl<typeof InferenceService>> {
  return {
    async *chat(request, ctx) {
      const input = await chatInput(deps.db, request.params!, ctx);
      for await (const event of deps.orchestrator.chat(input)) yield toResponse(event);
    },
    async chatUnary(request, ctx) {
      const input = await chatInput(deps.db, request.params!, ctx);
      let text = "";
      let accepted: Accepted | undefined;
      let done: Done | undefined;
      for await (const event of deps.orchestrator.chat(input)) {
        if (event.type === "token") text += event.text;
        else if (event.type === "accepted") accepted = create(AcceptedSchema, acceptedMessage(event));
        else if (event.type === "done") done = create(DoneSchema, doneMessage(event));
      }
      return { accepted, text, done };
    },
    listModels() {
      const models = servedModels(deps.registry.nodes()).map((m) => ({ ...m, bestTier: tierEnum[m.bestTier], parameterCount: BigInt(m.parameterCount) }));
      return { models };
    },
  };
}
