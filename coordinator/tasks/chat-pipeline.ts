// The one way a chat request reaches the orchestrator, from every entry point (InferenceService.Chat and ChatUnary,
// `POST /v1/chat/completions`, `POST /api/chat/stream`): validated ChatParams and the caller in, the answer's events
// out.
import type { Kysely } from "kysely";
import type { ChatParams } from "../../gen/iris/v1/inference_pb.ts";
import { chatRoleFromProto, difficultyFromProto } from "../../common/vocabulary.ts";
import { isAdmin, type Principal } from "../accounts/principal.ts";
import { accountIdForKey } from "../accounts/store.ts";
import type { Database } from "../db/schema.ts";
import type { ChatLimiter } from "../limits/chat-limits.ts";
import type { ChatEvent, ChatInput } from "./chat.ts";
import { divisionModeFromProto } from "./division/mode.ts";
import type { Orchestrator } from "./orchestrator.ts";

/** Who asks, as the entry point knows it (the auth interceptor's principal, or an HTTP route's credentials). */
export interface ChatCall {
  principal: Principal;
  /** The socket's peer, or the first X-Forwarded-For hop with TRUST_PROXY; "" when unknown. */
  clientAddress: string;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
  /** False when the caller takes the answer whole (ChatUnary, `stream: false`): the node sends it in one result. */
  streaming?: boolean;
}

/**
 * Checks the request's account key, charges the caller one message (or throws the refusal), and starts the
 * answer, metered so that a message the network could not serve is given back. `params` must already have passed
 * ChatParams' protovalidate rules (the interceptor for RPCs, validateChatParams for the HTTP routes).
 */
export type ChatPipeline = (params: ChatParams, call: ChatCall) => Promise<AsyncGenerator<ChatEvent>>;

export interface ChatPipelineDeps {
  /** For account keys sent in the request (ChatParams.account_key). */
  db: Kysely<Database>;
  orchestrator: Pick<Orchestrator, "chat">;
  limiter: Pick<ChatLimiter, "admit" | "meter">;
}

export function createChatPipeline(deps: ChatPipelineDeps): ChatPipeline {
  return async (params, call) => {
    const input = await chatInput(deps.db, params, call);
    const requestAccountId = params.accountKey ? input.accountId : undefined;
    const ticket = await deps.limiter.admit({
      principal: call.principal,
      requestAccountId,
      clientAddress: call.clientAddress,
    });
    return deps.limiter.meter(deps.orchestrator.chat(input), ticket);
  };
}

/**
 * The orchestrator's input from a request's params and its caller. The account the task is recorded for is the
 * request's own key's (checked here), else the caller's credential's.
 */
async function chatInput(db: Kysely<Database>, params: ChatParams, call: ChatCall): Promise<ChatInput> {
  const { principal } = call;
  const credentialAccount = principal.kind === "anonymous" ? undefined : (principal.accountId ?? undefined);
  const accountId = params.accountKey
    ? await accountIdForKey(db, params.accountKey, { field: "account_key" })
    : credentialAccount;
  return {
    messages: params.messages.map((m) => ({ role: chatRoleFromProto(m.role) ?? "user", content: m.content })),
    model: params.model,
    maxTokens: params.maxTokens,
    temperature: params.temperature,
    difficultyHint: difficultyFromProto(params.difficulty),
    trustedHint: isAdmin(principal),
    divisionMode: divisionModeFromProto(params.divisionMode),
    consensusNodes: params.consensusNodes,
    accountId,
    clientAddress: call.clientAddress,
    signal: call.signal,
    ...(call.streaming === false ? { streaming: false } : {}),
  };
}
