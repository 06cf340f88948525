// NodeService.Connect: registers a node, then relays heartbeats, chunks, results and errors for its tasks.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Difficulty } from "../../gen/iris/v1/common_pb.ts";
import {
  ConnectResponseSchema,
  type ConnectRequest,
  type ConnectResponse,
  type NodeService,
  type Register,
} from "../../gen/iris/v1/node_pb.ts";
import { validateNodeMessage } from "../validation.ts";
import type { KeyObject } from "node:crypto";
import { Channel } from "../../common/channel.ts";
import { deriveSessionKeys, EnvelopeError, type SessionKeys } from "../../common/crypto/envelope.ts";
import type { Database } from "../db/schema.ts";
import { clientAddressKey } from "../request-context.ts";
import { LiveNode, type NodeRegistry } from "./registry.ts";
import { accountOf, checkBinding, moveNode, nextWithin, registerChallenge } from "./identity.ts";
import { closeSession, openSession, storedMeasurements, upsertNode } from "./store.ts";
import type { SessionCloser } from "./session-closer.ts";
import { isSuspended } from "./suspension.ts";
import { measuredTier, speedVerdict } from "./capability.ts";
import { capabilitiesOf } from "./declaration.ts";
import { measurementKey, NodeMeasurements } from "./measurements.ts";
import { tierToProto } from "../../common/vocabulary.ts";

export interface NodeServiceDeps {
  db: Kysely<Database>;
  registry: NodeRegistry;
  logger: Logger;
  heartbeatIntervalMs: number;
  coordinatorInstance: string;
  /** Writes the ends of sessions (and the measurements of nodes that left) in batches. */
  sessions: SessionCloser;
  /** The coordinator's X25519 key pair (COORDINATOR_PRIVATE_KEY_PATH). */
  coordinatorKey: { privateKey: KeyObject; publicKey: Uint8Array };
  now?: () => number;
  /** Where classify results go (the classifier chain's node link), when nodes are asked. */
  classifyLink?: {
    resolveClassifyResult(classifyId: string, difficulty: Difficulty, fromNodeId: string): boolean;
    nodeGone(nodeId: string): void;
  };
  /** How long a node has to answer the register challenge (NODE_REGISTER_TIMEOUT_MS). */
  registerTimeoutMs?: number;
  /** This month's earnings so far, per account, for the heartbeat acks (the agent's terminal UI shows them). */
  earnings?: { forAccount(accountId: string): { month: string; units: number } | undefined };
}

function earningsOf(
  deps: NodeServiceDeps,
  accountId: string,
): { estimateMonth?: string; estimatedMonthUnits?: bigint } {
  const estimate = deps.earnings?.forAccount(accountId);
  return estimate ? { estimateMonth: estimate.month, estimatedMonthUnits: BigInt(estimate.units) } : {};
}

export function nodeService(deps: NodeServiceDeps): Pick<ServiceImpl<typeof NodeService>, "connect" | "moveNode"> {
  const now = deps.now ?? Date.now;
  const registerTimeoutMs = deps.registerTimeoutMs ?? 5_000;

  /** Accepts a registration whose key was proven: the node's row, session and session keys. */
  async function admit(
    register: Register,
    accountId: string,
    ctx: HandlerContext,
    outbox: Channel<ConnectResponse>,
  ): Promise<LiveNode> {
    const { capabilities, size } = capabilitiesOf(register);
    // earlier measurements of the same model stand: reconnecting does not wipe a contradicted benchmark
    const key = measurementKey(capabilities);
    const live = deps.registry.get(register.nodeId);
    const measured =
      live?.measured.model === key
        ? live.measured
        : new NodeMeasurements(
            key,
            // a reconnect before the last session's end is written starts from what that session measured
            deps.sessions.unwrittenMeasurements(register.nodeId) ??
              (await storedMeasurements(deps.db, register.nodeId)),
          );
    const { tier, reason } = measuredTier(
      capabilities,
      capabilities.tokensPerSecond,
      speedVerdict(capabilities.tokensPerSecond, measured.speedSamples),
    );
    const reputation = await upsertNode(deps.db, {
      id: register.nodeId,
      accountId,
      tier,
      capabilities,
      publicKey: register.publicKey,
      promisedHoursUtc: register.promisedHoursUtc,
    });
    if (reputation === undefined) {
      // another registration bound the id between the check and now: say whose, as the check would have
      await checkBinding(deps.db, register.nodeId, accountId, register.publicKey);
      throw new ConnectError(
        `node_id: node "${register.nodeId}" is bound to another registration`,
        Code.PermissionDenied,
      );
    }
    // a suspension (repeated mismatches) outlives reconnects and coordinators: routing skips the node until cleared
    const suspended = await isSuspended(deps.db, register.nodeId);
    const sessionId = await openSession(
      deps.db,
      register.nodeId,
      deps.coordinatorInstance,
      ctx.values.get(clientAddressKey),
    );
    let keys: SessionKeys;
    try {
      keys = deriveSessionKeys(deps.coordinatorKey.privateKey, register.publicKey, {
        coordinatorPublicKey: deps.coordinatorKey.publicKey,
        nodePublicKey: register.publicKey,
        nodeId: register.nodeId,
        sessionId,
      });
    } catch (err) {
      await closeSession(deps.db, sessionId, register.nodeId, "unusable public key");
      if (err instanceof EnvelopeError) throw new ConnectError(`public_key: ${err.message}`, Code.InvalidArgument);
      throw err;
    }
    const node = new LiveNode(
      register.nodeId,
      accountId,
      sessionId,
      tier,
      reason,
      capabilities,
      reputation,
      keys,
      outbox,
      now(),
    );
    node.suspended = suspended;
    node.publicKey = register.publicKey;
    node.size = size;
    node.measured = measured;
    return node;
  }

  function handle(node: LiveNode, message: ConnectRequest, log: Logger): void {
    node.lastSeenAt = now();
    const m = message.message;
    switch (m.case) {
      case "heartbeat": {
        const wasFull = node.freeSlots <= 0;
        node.paused = m.value.paused;
        // refreshed readings (VRAM used, utilisation) replace those of the registration; none sent, none changed
        node.heard(m.value.load, m.value.gpus);
        node.send(
          create(ConnectResponseSchema, {
            message: {
              case: "heartbeatAck",
              value: {
                reputation: node.reputation,
                serverTimeUnixMs: BigInt(now()),
                ...earningsOf(deps, node.accountId),
                // the tier moves when measured speed contradicts the benchmark: the node hears it here
                tier: tierToProto[node.tier],
                tierReason: node.tierReason,
              },
            },
          }),
        );
        if (wasFull && node.freeSlots > 0) deps.registry.notifyCapacity();
        return;
      }
      case "chunk":
      case "result":
      case "error": {
        const sink = node.tasks.get(m.value.taskId);
        if (!sink) {
          // a late message for a task that was cancelled or re-routed, or one never assigned to this node
          log.warn({ taskId: m.value.taskId, kind: m.case }, "message for a task this node does not run; ignored");
          return;
        }
        if (m.case === "chunk") sink.chunk(m.value);
        else if (m.case === "result") sink.result(m.value);
        else sink.error(m.value);
        return;
      }
      case "register":
      case "registerProof":
        throw new ConnectError(
          `${m.case === "register" ? "register" : "register_proof"} may only open the stream`,
          Code.InvalidArgument,
        );
      case "classifyResult":
        if (!deps.classifyLink?.resolveClassifyResult(m.value.classifyId, m.value.difficulty, node.id)) {
          log.warn({ classifyId: m.value.classifyId }, "classify result nobody is waiting for; ignored");
        }
        return;
      case undefined:
        throw new ConnectError("message must be set", Code.InvalidArgument);
    }
  }

  return {
    moveNode: (request) => moveNode(deps, request),
    async *connect(requests, ctx) {
      const iterator = requests[Symbol.asyncIterator]();
      // a stream that never registers is closed, so connections cannot be held open for free
      const first = await nextWithin(iterator, registerTimeoutMs, "register message");
      validateNodeMessage(first);
      if (first.message.case !== "register") {
        throw new ConnectError("the first message must be a register", Code.InvalidArgument);
      }
      const register = first.message.value;
      const accountId = await accountOf(deps.db, register.accountKey);
      if (register.publicKey.length === 0) {
        throw new ConnectError(
          "public_key: the node's 32-byte X25519 key is required (task payloads are encrypted)",
          Code.InvalidArgument,
        );
      }
      // refused before the challenge: the id is someone else's, whatever the proof would say
      await checkBinding(deps.db, register.nodeId, accountId, register.publicKey);
      // a replayed register (captured bytes) cannot answer a fresh challenge: the live node keeps its id
      const challenge = registerChallenge(deps.coordinatorKey, register.nodeId, register.publicKey);
      yield challenge.message;
      challenge.verify(await nextWithin(iterator, registerTimeoutMs, "register_proof"));
      const outbox = new Channel<ConnectResponse>();
      const node = await admit(register, accountId, ctx, outbox);
      const log = deps.logger.child({ nodeId: node.id, sessionId: node.sessionId });
      deps.registry.add(node);
      log.info({ tier: node.tier, reason: node.tierReason, model: node.capabilities.modelName }, "node registered");
      let endReason = "the node closed the stream";
      const reader = (async () => {
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
          validateNodeMessage(next.value); // every message but chunks (see coordinator/validation.ts)
          handle(node, next.value, log);
        }
      })();
      reader.then(
        () => outbox.close(),
        (err: unknown) => {
          const error = ConnectError.from(err);
          endReason = error.code === Code.Canceled ? "the node went away" : error.rawMessage;
          // Canceled means the node went away: nothing to send it; anything else ends its stream with the error
          outbox.close(error.code === Code.Canceled ? undefined : error);
        },
      );
      try {
        yield create(ConnectResponseSchema, {
          message: {
            case: "registerAck",
            value: {
              nodeId: node.id,
              tier: tierToProto[node.tier],
              tierReason: node.tierReason,
              heartbeatIntervalMs: deps.heartbeatIntervalMs,
              reputation: node.reputation,
              sessionId: node.sessionId,
              coordinatorPublicKey: deps.coordinatorKey.publicKey,
            },
          },
        });
        yield* outbox;
      } catch (err) {
        endReason = ConnectError.from(err).rawMessage;
        throw err;
      } finally {
        outbox.close();
        deps.registry.remove(node, endReason);
        deps.classifyLink?.nodeGone(node.id);
        log.info({ reason: endReason }, "node disconnected");
        // queued, not awaited: thousands of streams ending at once become a few batched transactions. The
        // measurements go with it only while this is still the registered connection: a replacing one has measured
        // since and writes its own
        const stillRegistered = deps.registry.get(node.id) === undefined;
        deps.sessions.end({
          sessionId: node.sessionId,
          nodeId: node.id,
          reason: endReason,
          at: new Date(),
          ...(stillRegistered ? { measured: { tier: node.tier, snapshot: node.measured.snapshot() } } : {}),
        });
      }
    },
  };
}
