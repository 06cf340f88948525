// InferenceService: Chat (server stream), ChatUnary and ListModels; the chats through the one chat pipeline.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
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
import { principalKey } from "../accounts/principal.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import { clientAddressKey } from "../request-context.ts";
import { divisionModeToProto } from "./division/mode.ts";
import { servedModels } from "./models.ts";
import type { ChatPipeline } from "./chat-pipeline.ts";
import type { ChatEvent } from "./chat.ts";
import { difficultyToProto, tierToProto } from "../../common/vocabulary.ts";

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
      return create(ChatResponseSchema, {
        event: {
          case: "queued",
          value: { position: event.position, maxWaitMs: event.maxWaitMs, estimatedWaitMs: event.estimatedWaitMs },
        },
      });
    case "accepted":
      return create(ChatResponseSchema, { event: { case: "accepted", value: acceptedMessage(event) } });
    case "token":
      return create(ChatResponseSchema, { event: { case: "token", value: { text: event.text } } });
    case "done":
      return create(ChatResponseSchema, { event: { case: "done", value: doneMessage(event) } });
  }
}

export function inferenceService(deps: {
  chat: ChatPipeline;
  registry: NodeRegistry;
}): Partial<ServiceImpl<typeof InferenceService>> & Pick<ServiceImpl<typeof InferenceService>, "chat"> {
  /** The validated params through the one chat pipeline, as the auth interceptor identified the caller. */
  function admittedChat(
    params: ChatParams,
    ctx: HandlerContext,
    streaming: boolean,
  ): Promise<AsyncGenerator<ChatEvent>> {
    return deps.chat(params, {
      principal: ctx.values.get(principalKey),
      clientAddress: ctx.values.get(clientAddressKey),
      signal: ctx.signal,
      streaming,
    });
  }

  return {
    async *chat(request, ctx) {
      for await (const event of await admittedChat(request.params!, ctx, true)) yield toResponse(event);
    },
    async chatUnary(request, ctx) {
      let text = "";
      let accepted: Accepted | undefined;
      let done: Done | undefined;
      // taken whole: the node sends the answer in its result, one message instead of chunks
      for await (const event of await admittedChat(request.params!, ctx, false)) {
        if (event.type === "token") text += event.text;
        else if (event.type === "accepted") accepted = create(AcceptedSchema, acceptedMessage(event));
        else if (event.type === "done") done = create(DoneSchema, doneMessage(event));
      }
      return { accepted, text, done };
    },
    listModels() {
      const models = servedModels(deps.registry.nodes()).map((m) => ({
        ...m,
        bestTier: tierToProto[m.bestTier],
        parameterCount: BigInt(m.parameterCount),
      }));
      return { models };
    },
  };
}
