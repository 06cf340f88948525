// The TypeScript SDK: typed clients for every Iris service, for Node and browsers (the transport decides which).
import { create } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { AccountService, type AuthToken } from "../gen/iris/v1/account_pb.ts";
import { Role, type Difficulty, type DivisionMode } from "../gen/iris/v1/common_pb.ts";
import { NodeService } from "../gen/iris/v1/node_pb.ts";
import {
  InferenceService,
  type Accepted,
  type Done,
  type ModelInfo,
  type Queued,
} from "../gen/iris/v1/inference_pb.ts";
import {
  NetworkService,
  NetworkStatsSchema,
  type LeaderboardEntry,
  type NetworkStats,
  type NodeInfo,
  type ReputationEvent,
  type TaskInfo,
} from "../gen/iris/v1/network_pb.ts";
import { chatRoleToProto } from "../common/vocabulary.ts";

export { Role };
export type { AuthToken, LeaderboardEntry, ModelInfo, NetworkStats, NodeInfo, ReputationEvent, TaskInfo };

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
  /** How to spread the request over nodes (unset: single). */
  divisionMode?: DivisionMode;
  /** With consensus: how many nodes answer, 2 to 9 (unset: the coordinator's default, 3). */
  consensusNodes?: number;
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
  /** The models connected nodes serve now. */
  models(): Promise<ModelInfo[]>;
  /** The network's figures now (nodes by tier, tasks, queue, tokens/s). */
  stats(): Promise<NetworkStats>;
  /** Nodes, online ones first (limit: 0 or unset means 100). */
  nodes(options?: { onlineOnly?: boolean; limit?: number }): Promise<NodeInfo[]>;
  /** Recent tasks, newest first, optionally one node's (limit: 0 or unset means 50). */
  tasks(options?: { limit?: number; nodeId?: string }): Promise<TaskInfo[]>;
  /** Nodes ranked by reputation, best first (limit: 0 or unset means 20). */
  leaderboard(limit?: number): Promise<LeaderboardEntry[]>;
  /** One node's reputation events, newest first; NotFound for a node never registered. */
  reputation(nodeId: string, options?: { limit?: number }): Promise<ReputationEvent[]>;
  /** A new account key ("1234 5678 9012 3456"), shown this once: the coordinator keeps only its hash. */
  generateKey(): Promise<string>;
  /** Whether an account key exists and is not revoked. */
  verifyKey(accountKey: string): Promise<boolean>;
  /**
   * Binds a node id to a new X25519 public key (32 bytes, or base64 as a refused agent prints it), proven by the
   * node's account key; a connection with the old key is ended. True when one was.
   */
  moveNode(nodeId: string, publicKey: Uint8Array | string, accountKey: string): Promise<boolean>;
  /** Creates an email/password user; the client then sends its token on every call. */
  register(email: string, password: string): Promise<AuthToken>;
  /** Signs a user in; the client then sends its token on every call. */
  login(email: string, password: string): Promise<AuthToken>;
  /** Changes (or with undefined, drops) the bearer token sent from now on; a token wins over the account key. */
  setToken(token: string | undefined): void;
}

export function createIrisClient(options: IrisClientOptions): IrisClient {
  // mutable so that register/login can sign the same client in (the coordinator refuses both credentials at once)
  let token = options.token;
  const auth: Interceptor = (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    else if (options.accountKey) req.header.set("x-iris-account-key", options.accountKey);
    return next(req);
  };
  const transport = options.transport({ baseUrl: options.baseUrl, interceptors: [auth] });
  const inference = createClient(InferenceService, transport);
  const accounts = createClient(AccountService, transport);
  const network = createClient(NetworkService, transport);
  const nodes = createClient(NodeService, transport);

  function signedIn(authToken: AuthToken | undefined): AuthToken {
    if (!authToken) throw new Error("the coordinator answered without a token");
    token = authToken.accessToken;
    return authToken;
  }

  return {
    inference,
    accounts,
    network,
    async *chat(messages, chatOptions = {}) {
      const list = typeof messages === "string" ? [{ role: "user" as const, content: messages }] : messages;
      const stream = inference.chat(
        {
          params: {
            messages: list.map((m) => ({ role: chatRoleToProto[m.role], content: m.content })),
            maxTokens: chatOptions.maxTokens,
            temperature: chatOptions.temperature,
            model: chatOptions.model,
            difficulty: chatOptions.difficulty,
            divisionMode: chatOptions.divisionMode,
            consensusNodes: chatOptions.consensusNodes,
            accountKey: options.accountKey,
          },
        },
        { signal: chatOptions.signal },
      );
      for await (const response of stream) {
        const e = response.event;
        if (e.case === "queued") yield { type: "queued", queued: e.value };
        else if (e.case === "accepted") yield { type: "accepted", accepted: e.value };
        // a chunk may carry a token count but no text (e.g. half of a character): nothing a caller could show
        else if (e.case === "token") {
          if (e.value.text) yield { type: "token", text: e.value.text };
        } else if (e.case === "done") yield { type: "done", done: e.value };
      }
    },
    async models() {
      return (await inference.listModels({})).models;
    },
    async stats() {
      return (await network.getStats({})).stats ?? create(NetworkStatsSchema);
    },
    async nodes(query = {}) {
      return (await network.listNodes({ onlineOnly: query.onlineOnly ?? false, limit: query.limit ?? 0 })).nodes;
    },
    async tasks(query = {}) {
      return (await network.listTasks({ limit: query.limit ?? 0, nodeId: query.nodeId ?? "" })).tasks;
    },
    async leaderboard(limit = 0) {
      return (await network.getLeaderboard({ limit })).entries;
    },
    async reputation(nodeId, query = {}) {
      const request = { subject: { case: "nodeId" as const, value: nodeId }, limit: query.limit ?? 0 };
      return (await network.getReputationHistory(request)).events;
    },
    async generateKey() {
      return (await accounts.generateKey({})).accountKey;
    },
    async verifyKey(accountKey) {
      return (await accounts.verifyKey({ accountKey })).valid;
    },
    async moveNode(nodeId, publicKey, accountKey) {
      const key =
        typeof publicKey === "string" ? Uint8Array.from(atob(publicKey.trim()), (c) => c.charCodeAt(0)) : publicKey;
      return (await nodes.moveNode({ nodeId, publicKey: key, accountKey })).disconnected;
    },
    async register(email, password) {
      return signedIn((await accounts.register({ email, password })).token);
    },
    async login(email, password) {
      return signedIn((await accounts.login({ email, password })).token);
    },
    setToken(next) {
      token = next;
    },
  };
}
