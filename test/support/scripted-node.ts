// A node that speaks the real NodeService protocol over gRPC but answers from a script instead of a model:
// deterministic peers for coordinator tests and load generators for benchmarks.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { alter } from "./dishonest.ts";
import { chunkWithTokens } from "../../common/chunk-tokens.ts";
import { Channel } from "../../common/channel.ts";
import {
  deriveSessionKeys,
  openMessage,
  openText,
  publicKeyBytes,
  sealText,
  type SessionKeys,
} from "../../common/crypto/envelope.ts";
import type { Difficulty } from "../../gen/iris/v1/common_pb.ts";
import { registerProof } from "../../common/crypto/register-proof.ts";
import {
  ConnectRequestSchema,
  NodeService,
  TaskPayloadSchema,
  TaskErrorReason,
  type ConnectRequest,
  type RegisterAck,
  type TaskAssign,
  type ClassifyAssign,
  type TaskCancel,
  type TaskPayload,
} from "../../gen/iris/v1/node_pb.ts";

export interface Script {
  /** Text pieces to stream, one chunk each. */
  tokens: string[];
  /** Pause before each chunk. */
  delayMs?: number;
  /** Hold the task (its slot taken, nothing sent) until this settles. */
  holdUntil?: Promise<unknown>;
  /** Tokens each chunk says it carries (token_count), and the usage then counts; unset: one each, unsaid. */
  chunkTokens?: number;
  /** Fail with this reason before the first chunk. */
  failWith?: TaskErrorReason;
  /** The failure's message (default "scripted failure"). */
  failMessage?: string;
  /** After this many chunks, drop the whole connection (as a killed agent would). */
  dieAfter?: number;
  /** Never answer (the coordinator's deadline must end it). */
  hang?: boolean;
  /** Flip one bit of this chunk's ciphertext (a tampered message). */
  tamperChunk?: number;
  /** Send this chunk twice (a replayed message). */
  replayChunk?: number;
  /** Send chunk text in clear instead of sealed (a downgrade). */
  plaintext?: boolean;
  /** When the assign says enable_streaming off, send the whole text in the result, as the agent does. */
  whole?: boolean;
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
  /** The node's context length in tokens (4096 when not given). */
  contextLength?: number;
  /** The tokenizer rates it reports (Register.tokenizer_rates); none by default, as a backend without a tokenizer. */
  tokenizerRates?: { asciiCharsPerToken: number; otherCharsPerToken: number };
  /** The model file fingerprint it declares (64 hex digits); none by default, as an HTTP backend's node. */
  modelSha256?: string;
  /** The answer to an assignment; `payload` is the assignment as the node opened it (the prompt, the seed...). */
  script?: (assign: TaskAssign, payload: TaskPayload) => Script;
  /**
   * The answer to a classify assign (`prompt` as the node opened it), after `delayMs`; none by default: a node that
   * never answers classify.
   */
  classify?: (prompt: string) => { difficulty: Difficulty; delayMs?: number } | undefined;
  /**
   * Test-only dishonest mode: the node alters every piece of text it sends (letters rotated by 13, digits by 5),
   * as a node that does not run the model it claims, or tampers with answers, would. Its chunks are properly
   * sealed: only comparing its answers with other nodes' (consensus, spot checks, canaries) can catch it.
   */
  dishonest?: boolean;
  transport?: Transport;
  /**
   * The node's X25519 private key. By default one key per node id for the whole test process, as an agent keeps
   * its key file: restarting a node under the same id is the same node.
   */
  key?: KeyObject;
  /**
   * Registers with this public key instead of its own, as a replayed Register (captured bytes) would: the node does
   * not hold the matching private key, so it answers the challenge with what it can, random bytes.
   */
  claimPublicKey?: Uint8Array;
}

export interface ScriptedNode {
  /** The register ack, or the error that ended the stream before it. */
  registered: Promise<RegisterAck>;
  assigns: TaskAssign[];
  /** The assigns' payloads as the node opened them. */
  payloads: TaskPayload[];
  cancels: TaskCancel[];
  /** The classify assigns received, answered or not. */
  classifyAssigns: ClassifyAssign[];
  /** Resolves with the error that ended the stream (undefined for a clean end). */
  ended: Promise<unknown>;
  /** Ends the stream as a crashed process would: abruptly, mid-whatever. */
  kill(): void;
  /** Sends a properly sealed chunk for any task id, assigned to this node or not (a misbehaving node). */
  inject(taskId: string, text: string): void;
}

/** Tests compare against what a dishonest node sends. */
export { alter };

const keysByNodeId = new Map<string, KeyObject>();

/** The test process's key for a node id (made on first use), as an agent's NODE_KEY_PATH file keeps it. */
export function keyFor(nodeId: string): KeyObject {
  let key = keysByNodeId.get(nodeId);
  if (!key) keysByNodeId.set(nodeId, (key = generateKeyPairSync("x25519").privateKey));
  return key;
}

const defaultScript = (): Script => ({ tokens: ["Hello", ",", " world", "!"] });

export function startScriptedNode(options: ScriptedNodeOptions): ScriptedNode {
  const transport = options.transport ?? createGrpcTransport({ baseUrl: options.baseUrl });
  const outbox = new Channel<ConnectRequest>();
  const abort = new AbortController();
  const assigns: TaskAssign[] = [];
  const payloads: TaskPayload[] = [];
  const cancels: TaskCancel[] = [];
  const classifyAssigns: ClassifyAssign[] = [];
  const cancelled = new Set<string>();
  const send = (message: MessageInitShape<typeof ConnectRequestSchema>["message"]) =>
    outbox.push(create(ConnectRequestSchema, { message }));
  const key = options.key ?? keyFor(options.nodeId);
  let keys: SessionKeys | undefined;
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
      contextLength: options.contextLength ?? 4096,
      benchmarkTokensPerSecond: options.tokensPerSecond ?? 20,
      maxConcurrentTasks: options.maxConcurrentTasks ?? 1,
      agentVersion: "scripted",
      backend: "scripted",
      publicKey: options.claimPublicKey ?? publicKeyBytes(key),
      modelSha256: options.modelSha256 ?? "",
      ...(options.tokenizerRates ? { tokenizerRates: options.tokenizerRates } : {}),
    },
  });

  async function run(assign: TaskAssign): Promise<void> {
    const taskId = assign.taskId;
    if (assign.payload.case !== "sealed") throw new Error("the coordinator sent a payload in clear");
    const payload = openMessage(keys!.toNode, TaskPayloadSchema, assign.payload.value, {
      taskId,
      sequence: 0,
      kind: "assign",
    });
    payloads.push(payload);
    const script = (options.script ?? defaultScript)(assign, payload);
    if (script.hang) return;
    if (script.failWith !== undefined) {
      send({
        case: "error",
        value: { taskId, reason: script.failWith, message: script.failMessage ?? "scripted failure" },
      });
      return;
    }
    if (script.whole && !assign.enableStreaming) {
      const text = script.tokens.join("");
      send({
        case: "result",
        value: {
          taskId,
          usage: { promptTokens: 7, completionTokens: script.tokens.length },
          finishReason: "stop",
          chunkCount: 0,
          content: {
            case: "sealed",
            value: sealText(keys!.toCoordinator, text, { taskId, sequence: 0, kind: "result" }),
          },
        },
      });
      return;
    }
    if (script.holdUntil) await script.holdUntil;
    let sequence = 0;
    for (const text of script.tokens) {
      if (script.delayMs) await new Promise((resolve) => setTimeout(resolve, script.delayMs));
      if (cancelled.has(taskId) || abort.signal.aborted) return;
      if (script.dieAfter !== undefined && sequence >= script.dieAfter) {
        kill();
        return;
      }
      const sent = options.dishonest ? alter(text) : text;
      const sealed = sealText(keys!.toCoordinator, sent, { taskId, sequence, kind: "chunk" });
      if (script.tamperChunk === sequence) sealed.ciphertext[0]! ^= 1;
      const content = script.plaintext
        ? ({ case: "text", value: sent } as const)
        : ({ case: "sealed", value: sealed } as const);
      send({ case: "chunk", value: chunkWithTokens({ taskId, sequence, content }, script.chunkTokens ?? 0) });
      if (script.replayChunk === sequence) send({ case: "chunk", value: { taskId, sequence, content } });
      sequence++;
    }
    send({
      case: "result",
      value: {
        taskId,
        usage: { promptTokens: 7, completionTokens: sequence * (script.chunkTokens ?? 1) },
        finishReason: "stop",
        chunkCount: sequence,
      },
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
        if (m.case === "registerChallenge") {
          const proof = options.claimPublicKey
            ? new Uint8Array(randomBytes(32))
            : registerProof(key, m.value.coordinatorPublicKey, {
                nonce: m.value.nonce,
                nodeId: options.nodeId,
                nodePublicKey: publicKeyBytes(key),
                coordinatorPublicKey: m.value.coordinatorPublicKey,
              });
          send({ case: "registerProof", value: { proof } });
        } else if (m.case === "registerAck") {
          keys = deriveSessionKeys(key, m.value.coordinatorPublicKey, {
            coordinatorPublicKey: m.value.coordinatorPublicKey,
            nodePublicKey: publicKeyBytes(key),
            nodeId: m.value.nodeId,
            sessionId: m.value.sessionId,
          });
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
        } else if (m.case === "classifyAssign") {
          classifyAssigns.push(m.value);
          void answerClassify(m.value);
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

  function inject(taskId: string, text: string): void {
    const sealed = sealText(keys!.toCoordinator, text, { taskId, sequence: 0, kind: "chunk" });
    send({ case: "chunk", value: { taskId, sequence: 0, content: { case: "sealed", value: sealed } } });
  }

  async function answerClassify(assign: ClassifyAssign): Promise<void> {
    const prompt = openText(keys!.toNode, assign.sealedPrompt!, {
      taskId: assign.classifyId,
      sequence: 0,
      kind: "classify",
    });
    const answer = options.classify?.(prompt);
    if (!answer) return;
    if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
    if (!abort.signal.aborted)
      send({ case: "classifyResult", value: { classifyId: assign.classifyId, difficulty: answer.difficulty } });
  }

  return { registered, assigns, payloads, cancels, classifyAssigns, ended, kill, inject };
}

export { TaskErrorReason };

/** The scripted nodes a test file starts against one coordinator and account; `killAll` ends them together. */
export class ScriptedNodes {
  readonly #started: ScriptedNode[] = [];

  constructor(private readonly target: () => { baseUrl: string; accountKey: string }) {}

  /** Starts a node; with `waitForRegistration` (the default) resolves once the coordinator acknowledged it. */
  async start(
    options: Partial<ScriptedNodeOptions> & { nodeId: string },
    waitForRegistration = true,
  ): Promise<ScriptedNode> {
    const node = startScriptedNode({ ...this.target(), ...options });
    this.#started.push(node);
    if (waitForRegistration) await node.registered;
    return node;
  }

  /** The index-th node started since the last killAll. */
  at(index: number): ScriptedNode | undefined {
    return this.#started[index];
  }

  /** Every node started since the last killAll, in order. */
  all(): readonly ScriptedNode[] {
    return this.#started;
  }

  killAll(): void {
    for (const node of this.#started.splice(0)) node.kill();
  }
}
