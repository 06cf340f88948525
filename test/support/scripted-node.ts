// A node that speaks the real NodeService protocol over gRPC but answers from a script instead of a model:
// deterministic peers for coordinator tests and load generators for benchmarks.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Channel } from "../../common/channel.ts";
import {
  ConnectRequestSchema,
  NodeService,
  TaskErrorReason,
  type ConnectRequest,
  type RegisterAck,
  type TaskAssign,
  type TaskCancel,
} from "../../gen/iris/v1/node_pb.ts";

export interface Script {
  /** Text pieces to stream, one chunk each. */
  tokens: string[];
  /** Pause before each chunk. */
  delayMs?: number;
  /** Fail with this reason before the first chunk. */
  failWith?: TaskErrorReason;
  /** After this many chunks, drop the whole connection (as a killed agent would). */
  dieAfter?: number;
  /** Never answer (the coordinator's deadline must end it). */
  hang?: boolean;
}

export interface ScriptedNodeOptions {
  baseUrl: string;
  accountKey: string;
  nodeId: string;
  modelName?: string;
  parameterCount?: number;
  quantization?: string;
  tokensPerSecond?: number;
  maxConcurrentTasks?: number;
  /** Sends no heartbeats when false (to test the missed-heartbeat rule). */
  heartbeats?: boolean;
  script?: (assign: TaskAssign) => Script;
  transport?: Transport;
}

export interface ScriptedNode {
  /** The register ack, or the error that ended the stream before it. */
  registered: Promise<RegisterAck>;
  assigns: TaskAssign[];
  cancels: TaskCancel[];
  /** Resolves with the error that ended the stream (undefined for a clean end). */
  ended: Promise<unknown>;
  /** Ends the stream as a crashed process would: abruptly, mid-whatever. */
  kill(): void;
}

const defaultScript = (): Script => ({ tokens: ["Hello", ",", " world", "!"] });

export function startScriptedNode(options: ScriptedNodeOptions): ScriptedNode {
  const transport = options.transport ?? createGrpcTransport({ baseUrl: options.baseUrl });
  const outbox = new Channel<ConnectRequest>();
  const abort = new AbortController();
  const assigns: TaskAssign[] = [];
  const cancels: TaskCancel[] = [];
  const cancelled = new Set<string>();
  const send = (message: MessageInitShape<typeof ConnectRequestSchema>["message"]) =>
    outbox.push(create(ConnectRequestSchema, { message }));
  let heartbeat: NodeJS.Timeout | undefined;
  let resolveAck!: (ack: RegisterAck) => void;
  let rejectAck!: (error: unknown) => void;
  const registered = new Promise<RegisterAck>((resolve, reject) => {
    resolveAck = resolve;
    rejectAck = reject;
  });
  registered.catch(() => {});

  send({
    case: "register",
    value: {
      nodeId: options.nodeId,
      accountKey: options.accountKey,
      modelName: options.modelName ?? "scripted-8B-Q4_K_M",
      parameterCount: BigInt(options.parameterCount ?? 8_000_000_000),
      quantization: options.quantization ?? "Q4_K_M",
      contextLength: 4096,
      benchmarkTokensPerSecond: options.tokensPerSecond ?? 20,
      maxConcurrentTasks: options.maxConcurrentTasks ?? 1,
      agentVersion: "scripted",
      backend: "scripted",
    },
  });

  async function run(assign: TaskAssign): Promise<void> {
    const script = (options.script ?? defaultScript)(assign);
    const taskId = assign.taskId;
    if (script.hang) return;
    if (script.failWith !== undefined) {
      send({ case: "error", value: { taskId, reason: script.failWith, message: "scripted failure" } });
      return;
    }
    let sequence = 0;
    for (const text of script.tokens) {
      if (script.delayMs) await new Promise((resolve) => setTimeout(resolve, script.delayMs));
      if (cancelled.has(taskId) || abort.signal.aborted) return;
      if (script.dieAfter !== undefined && sequence >= script.dieAfter) {
        kill();
        return;
      }
      send({ case: "chunk", value: { taskId, sequence: sequence++, content: { case: "text", value: text } } });
    }
    send({
      case: "result",
      value: { taskId, usage: { promptTokens: 7, completionTokens: sequence }, finishReason: "stop", chunkCount: sequence },
    });
  }

  function kill(): void {
    clearInterval(heartbeat);
    abort.abort();
    outbox.close();
  }

  const ended = (async () => {
    try {
      const responses = createClient(NodeService, transport).connect(outbox, { signal: abort.signal });
      for await (const response of responses) {
        const m = response.message;
        if (m.case === "registerAck") {
          resolveAck(m.value);
          if (options.heartbeats !== false) {
            heartbeat = setInterval(() => send({ case: "heartbeat", value: { load: 0 } }), m.value.heartbeatIntervalMs);
          }
        } else if (m.case === "taskAssign") {
          assigns.push(m.value);
          void run(m.value);
        } else if (m.case === "cancel") {
          cancels.push(m.value);
          cancelled.add(m.value.taskId);
        }
      }
      return undefined;
    } catch (err) {
      rejectAck(err);
      return err;
    } finally {
      clearInterval(heartbeat);
      outbox.close();
    }
  })();

  return { registered, assigns, cancels, ended, kill };
}

export { TaskErrorReason };
