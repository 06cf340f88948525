// The agent's link to the coordinator: one NodeService.Connect stream, registration, heartbeats, tasks,
// and reconnection with exponential backoff and full jitter when the stream breaks.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import type { KeyObject } from "node:crypto";
import { Channel } from "../common/channel.ts";
import { deriveSessionKeys } from "../common/crypto/envelope.ts";
import { ConnectRequestSchema, NodeService, type ConnectRequest, type RegisterAck } from "../gen/iris/v1/node_pb.ts";
import type { Backend } from "./backends/backend.ts";
import type { Gpu } from "./gpu.ts";
import { TaskRunner, type OutgoingMessage } from "./tasks.ts";

export interface NodeIdentity {
  nodeId: string;
  /** 16 digits. */
  accountKey: string;
  modelName: string;
  parameterCount: number;
  quantization: string;
  contextLength: number;
  tokensPerSecond: number;
  maxConcurrentTasks: number;
  gpus: Gpu[];
  backend: string;
  agentVersion: string;
  promisedHoursUtc: number[];
  /** The node's X25519 key pair (NODE_KEY_PATH). */
  key: { privateKey: KeyObject; publicKey: Uint8Array };
}

export type ConnectionEvent =
  | { type: "connecting"; attempt: number }
  | { type: "registered"; ack: RegisterAck }
  | { type: "reconnecting"; inMs: number; error: string }
  | { type: "reputation"; reputation: number };

/** The coordinator refused the node for good (bad or unknown key, invalid registration): retrying won't help. */
export class RegistrationRefused extends Error {
  constructor(readonly code: Code, message: string) {
    super(message);
    this.name = "RegistrationRefused";
  }
}

export interface ConnectionOptions {
  coordinatorUrl: string;
  identity: NodeIdentity;
  backend: Backend;
  logger: Logger;
  signal: AbortSignal;
  onEvent?: (event: ConnectionEvent) => void;
  backoff?: { initialMs: number; maxMs: number };
  random?: () => number;
}

/** Full jitter: a uniform delay up to the exponential bound, so a coordinator restart doesn't get a thundering herd. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  return Math.round(random() * Math.min(maxMs, initialMs * 2 ** attempt));
}

/** Runs until `signal` aborts; throws RegistrationRefused when the coordinator refuses the node. */
export async function runConnection(options: ConnectionOptions): Promise<void> {
  const { initialMs, maxMs } = options.backoff ?? { initialMs: 500, maxMs: 30_000 };
  const random = options.random ?? Math.random;
  for (let attempt = 0; !options.signal.aborted; ) {
    options.onEvent?.({ type: "connecting", attempt });
    let registered = false;
    try {
      await session(options, () => (registered = true));
      if (options.signal.aborted) return;
      throw new ConnectError("the coordinator ended the stream", Code.Unavailable);
    } catch (err) {
      if (options.signal.aborted) return;
      const error = ConnectError.from(err);
      if (!registered && (error.code === Code.Unauthenticated || error.code === Code.InvalidArgument || error.code === Code.PermissionDenied)) {
        throw new RegistrationRefused(error.code, error.rawMessage);
      }
      attempt = registered ? 0 : attempt + 1;
      const inMs = backoffDelay(Math.max(attempt, 1), initialMs, maxMs, random);
      options.logger.warn({ err: error.rawMessage, code: Code[error.code], inMs }, "connection to the coordinator lost; reconnecting");
      options.onEvent?.({ type: "reconnecting", inMs, error: error.rawMessage });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, inMs);
        options.signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
  }
}

async function session(options: ConnectionOptions, onRegistered: () => void): Promise<void> {
  const { identity, logger } = options;
  const outbox = new Channel<ConnectRequest>();
  const send = (message: OutgoingMessage) => outbox.push(create(ConnectRequestSchema, { message }));
  let runner: TaskRunner | undefined;
  const stream = new AbortController();
  const onAbort = () => stream.abort();
  options.signal.addEventListener("abort", onAbort, { once: true });
  let heartbeat: NodeJS.Timeout | undefined;
  send({
    case: "register",
    value: {
      nodeId: identity.nodeId,
      accountKey: identity.accountKey,
      modelName: identity.modelName,
      parameterCount: BigInt(Math.round(identity.parameterCount)),
      quantization: identity.quantization,
      contextLength: identity.contextLength,
      benchmarkTokensPerSecond: identity.tokensPerSecond,
      maxConcurrentTasks: identity.maxConcurrentTasks,
      gpus: identity.gpus.map((g) => ({
        name: g.name,
        vendor: g.vendor,
        vramTotalMb: BigInt(Math.round(g.vramTotalMb)),
        vramUsedMb: BigInt(Math.round(g.vramUsedMb)),
        utilizationPercent: Math.round(g.utilizationPercent),
      })),
      agentVersion: identity.agentVersion,
      backend: identity.backend,
      promisedHoursUtc: identity.promisedHoursUtc,
      publicKey: identity.key.publicKey,
    },
  });
  try {
    const client = createClient(NodeService, createGrpcTransport({ baseUrl: options.coordinatorUrl }));
    for await (const response of client.connect(outbox, { signal: stream.signal })) {
      const m = response.message;
      if (m.case === "registerAck") {
        const keys = deriveSessionKeys(identity.key.privateKey, m.value.coordinatorPublicKey, {
          coordinatorPublicKey: m.value.coordinatorPublicKey,
          nodePublicKey: identity.key.publicKey,
          nodeId: m.value.nodeId,
          sessionId: m.value.sessionId,
        });
        const active = (runner = new TaskRunner(options.backend, send, logger, identity.maxConcurrentTasks, keys));
        onRegistered();
        logger.info({ nodeId: m.value.nodeId, tier: m.value.tier, reason: m.value.tierReason }, "registered with the coordinator");
        options.onEvent?.({ type: "registered", ack: m.value });
        heartbeat = setInterval(() => {
          send({
            case: "heartbeat",
            value: { load: active.active / identity.maxConcurrentTasks, activeTasks: active.active, paused: false },
          });
        }, m.value.heartbeatIntervalMs);
      } else if (m.case === "taskAssign") {
        logger.info({ taskId: m.value.taskId, maxTokens: m.value.maxTokens }, "task assigned");
        void runner?.start(m.value);
      } else if (m.case === "cancel") {
        logger.info({ taskId: m.value.taskId, reason: m.value.reason }, "task cancelled by the coordinator");
        runner?.cancel(m.value.taskId);
      } else if (m.case === "heartbeatAck") {
        options.onEvent?.({ type: "reputation", reputation: m.value.reputation });
      }
    }
  } finally {
    clearInterval(heartbeat);
    options.signal.removeEventListener("abort", onAbort);
    runner?.cancelAll();
    outbox.close();
  }
}
