// One NodeService.Connect stream of the agent (connection.ts reconnects): registration (the key proven, the session
// keys derived), heartbeats, and the coordinator's assigns, cancels and classify asks handed to the task runner.
import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { callBidi } from "../common/grpc/bidi-client.ts";
import { Channel } from "../common/channel.ts";
import { deriveSessionKeys, type SessionKeys } from "../common/crypto/envelope.ts";
import { registerProof } from "../common/crypto/register-proof.ts";
import { trustedWith } from "../common/ca-file.ts";
import { Tier } from "../gen/iris/v1/common_pb.ts";
import {
  ConnectRequestSchema,
  NodeService,
  type ConnectRequest,
  type ConnectResponse,
  type RegisterAck,
  type RegisterChallenge,
} from "../gen/iris/v1/node_pb.ts";
import { answerClassifyAssign } from "./classify.ts";
import type { Backend } from "./backends/backend.ts";
import type { NodeIdentity } from "./node-identity.ts";
import type { OutgoingMessage } from "./outgoing-message.ts";
import { gpuMessages, registerMessage } from "./register-message.ts";
import type { AgentState } from "./state.ts";
import { TaskRunner } from "./tasks.ts";

export interface SessionOptions {
  identity: NodeIdentity;
  backend: Backend;
  logger: Logger;
  /** Where the terminal UI reads the connection's state from. */
  state?: AgentState;
  /** CA certificates (PEM) trusted beside Node's roots: COORDINATOR_CA_PATH, for a coordinator with a private CA. */
  ca?: string[];
  /** CHUNK_INTERVAL_MS: a task's chunks go out at most one each this many ms; undefined or 0: one each turn. */
  chunkIntervalMs?: number;
}

/** The stream's live handles, for pause (heartbeat now) and quit (hand back, half-close). */
export class NodeSession {
  /** Set once the coordinator acknowledged the registration. */
  runner?: TaskRunner;
  readonly ended: Promise<void>;
  #ended!: () => void;
  readonly #outbox = new Channel<ConnectRequest>();
  #heartbeat: NodeJS.Timeout | undefined;
  #sessionKeys: SessionKeys | undefined;

  constructor(
    private readonly options: SessionOptions,
    /** Whether the node is paused now (the heartbeat says so, and stray assigns are refused). */
    private readonly isPaused: () => boolean,
  ) {
    this.ended = new Promise((resolve) => (this.#ended = resolve));
  }

  /** Sends a heartbeat now (after pause or resume); nothing before the registration is acknowledged. */
  heartbeat(): void {
    const runner = this.runner;
    if (!runner) return;
    const { identity, state } = this.options;
    this.#send({
      case: "heartbeat",
      value: {
        load: runner.active / identity.maxConcurrentTasks,
        activeTasks: runner.active,
        paused: this.isPaused(),
        // the latest readings (VRAM used, utilisation) for the dashboard; none when no GPU was found
        gpus: gpuMessages(state?.snapshot.gpus ?? []),
      },
    });
  }

  /** Ends the node's side of the stream; the coordinator reads what was sent, then ends its side. */
  close(): void {
    if (this.runner) this.#outbox.close();
  }

  /** Registers and serves until the stream ends (or `signal` aborts it); `onRegistered` once the ack came. */
  async run(coordinatorUrl: string, signal: AbortSignal, onRegistered: () => void): Promise<void> {
    this.#send({ case: "register", value: registerMessage(this.options.identity) });
    try {
      const nodeOptions = this.options.ca ? { ca: trustedWith(this.options.ca) } : undefined;
      const call = NodeService.method.connect;
      for await (const response of callBidi(coordinatorUrl, call, this.#outbox, { signal, nodeOptions }))
        this.#receive(response, onRegistered);
    } finally {
      clearInterval(this.#heartbeat);
      this.runner?.cancelAll();
      this.#outbox.close();
      this.#ended();
    }
  }

  #send(message: OutgoingMessage): boolean {
    return this.#outbox.push(create(ConnectRequestSchema, { message }));
  }

  #receive(response: ConnectResponse, onRegistered: () => void): void {
    const { logger, state } = this.options;
    const m = response.message;
    switch (m.case) {
      case "registerChallenge":
        this.#prove(m.value);
        return;
      case "registerAck":
        this.#registered(m.value);
        onRegistered();
        return;
      case "taskAssign":
        // per task at debug, as is "task ended" for a completed task (info for one that failed or was cancelled)
        logger.debug({ taskId: m.value.taskId, maxTokens: m.value.maxTokens }, "task assigned");
        void this.runner?.start(m.value);
        return;
      case "cancel":
        logger.info({ taskId: m.value.taskId, reason: m.value.reason }, "task cancelled by the coordinator");
        this.runner?.cancel(m.value.taskId);
        return;
      case "classifyAssign":
        answerClassifyAssign(
          m.value,
          this.#sessionKeys,
          this.options.backend,
          (message) => this.#send(message),
          logger,
        );
        return;
      case "heartbeatAck":
        state?.setReputation(m.value.reputation);
        if (m.value.tier !== Tier.UNSPECIFIED)
          state?.setTier({ name: Tier[m.value.tier] ?? "UNSPECIFIED", reason: m.value.tierReason });
        if (m.value.estimateMonth)
          state?.setEarnings({ month: m.value.estimateMonth, units: Number(m.value.estimatedMonthUnits) });
        return;
    }
  }

  /** Proves this agent holds the key it registered with (a replayed register could not). */
  #prove(challenge: RegisterChallenge): void {
    const { identity } = this.options;
    const proof = registerProof(identity.key.privateKey, challenge.coordinatorPublicKey, {
      nonce: challenge.nonce,
      nodeId: identity.nodeId,
      nodePublicKey: identity.key.publicKey,
      coordinatorPublicKey: challenge.coordinatorPublicKey,
    });
    this.#send({ case: "registerProof", value: { proof } });
  }

  /** The coordinator took the node: session keys, the task runner, and heartbeats at the interval it asked for. */
  #registered(ack: RegisterAck): void {
    const { identity, logger, state, backend } = this.options;
    const keys = (this.#sessionKeys = deriveSessionKeys(identity.key.privateKey, ack.coordinatorPublicKey, {
      coordinatorPublicKey: ack.coordinatorPublicKey,
      nodePublicKey: identity.key.publicKey,
      nodeId: ack.nodeId,
      sessionId: ack.sessionId,
    }));
    const send = (message: OutgoingMessage) => this.#send(message);
    this.runner = new TaskRunner(backend, send, logger, identity.maxConcurrentTasks, keys, {
      state,
      isPaused: this.isPaused,
      outbox: this.#outbox,
      chunkIntervalMs: this.options.chunkIntervalMs,
    });
    logger.info(
      { nodeId: ack.nodeId, tier: Tier[ack.tier] ?? "UNSPECIFIED", reason: ack.tierReason },
      "registered with the coordinator",
    );
    state?.registered({
      tier: Tier[ack.tier] ?? "UNSPECIFIED",
      tierReason: ack.tierReason,
      reputation: ack.reputation,
    });
    // a paused node says so at once: registration alone makes it routable
    if (this.isPaused()) this.heartbeat();
    this.#heartbeat = setInterval(() => this.heartbeat(), ack.heartbeatIntervalMs);
  }
}
