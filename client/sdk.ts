// The TypeScript SDK: typed clients for every Iris service, for Node and browsers (the transport decides which).
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { Role, type Difficulty, type DivisionMode } from "../gen/iris/v1/common_pb.ts";
import { InferenceService, type Accepted, type Done, type Queued } from "../gen/iris/v1/inference_pb.ts";
import { NetworkService } from "../gen/iris/v1/network_pb.ts";

export { Role };

export interface IrisClientOptions {
  /** e.g. http://127.0.0.1:8080 */
  baseUrl: string;
  /** Sent as x-iris-account-key: keyed rate limits, the account's own reputation history. */
  accountKey?: string;
  /** A JWT from AccountService.Login, sent as Authorization: Bearer. */
  token?: string;
  /**
   * Makes the transport: `createConnectTransport` from @connectrpc/connect-web in browsers, or from
   * @connectrpc/connect-node (or its gRPC transport) in Node. Receives the base URL and the auth interceptor.
   */
  transport: (options: { baseUrl: string; interceptors: Interceptor[] }) => Transport;
}

export interface ChatMessageInput {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatOptions {
  maxTokens?: number;
  temperature?: number;
  model?: string;
  difficulty?: Difficulty;
  divisionMode?: DivisionMode;
  signal?: AbortSignal;
}

/** One event of a streamed answer, as a discriminated union. */
export type ChatEvent =
  | { type: "queued"; queued: Queued }
  | { type: "accepted"; accepted: Accepted }
  | { type: "token"; text: string }
  | { type: "done"; done: Done };

export interface IrisClient {
  inference: Client<typeof InferenceService>;
  accounts: Client<typeof AccountService>;
  network: Client<typeof NetworkService>;
  /** Streams an answer: queued (while waiting), accepted, tokens as they come, done. Errors are ConnectErrors. */
  chat(messages: string | ChatMessageInput[], options?: ChatOptions): AsyncIterable<ChatEvent>;
}

const roles = { system: Role.SYSTEM, user: Role.USER, assistant: Role.ASSISTANT } as const;

export function createIrisClient(options: IrisClientOptions): IrisClient {
  const auth: Interceptor = (next) => (req) => {
    if (options.token) req.header.set("authorization", `Bearer ${options.token}`);
    else if (options.accountKey) req.header.set("x-iris-account-key", options.accountKey);
    return next(req);
  };
  const transport = options.transport({ baseUrl: options.baseUrl, interceptors: [auth] });
  const inference = createClient(InferenceService, transport);
  return {
    inference,
    accounts: createClient(AccountService, transport),
    network: createClient(NetworkService, transport),
    async *chat(messages, chatOptions = {}) {
      const list = typeof messages === "string" ? [{ role: "user" as const, content: messages }] : messages;
      const stream = inference.chat(
        {
          params: {
            messages: list.map((m) => ({ role: roles[m.role], content: m.content })),
            maxTokens: chatOptions.maxTokens,
            temperature: chatOptions.temperature,
            model: chatOptions.model,
            difficulty: chatOptions.difficulty,
            divisionMode: chatOptions.divisionMode,
            accountKey: options.accountKey,
          },
        },
        { signal: chatOptions.signal },
      );
      for await (const response of stream) {
        const e = response.event;
        if (e.case === "queued") yield { type: "queued", queued: e.value };
        else if (e.case === "accepted") yield { type: "accepted", accepted: e.value };
        else if (e.case === "token") yield { type: "token", text: e.value.text };
        else if (e.case === "done") yield { type: "done", done: e.value };
      }
    },
  };
}
