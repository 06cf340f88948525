// Live nodes as the registry holds them, with no connection behind them: for the routing, queue-estimate,
// context-fit, checker and network tests.
import { createSecretKey, randomBytes } from "node:crypto";
import { Channel } from "../../common/channel.ts";
import type { NodeTier } from "../../common/vocabulary.ts";
import { LiveNode, type NodeCapabilities } from "../../coordinator/nodes/registry.ts";
import type { TaskSink } from "../../coordinator/nodes/task-sink.ts";
import type { ConnectResponse } from "../../gen/iris/v1/node_pb.ts";

/** When testNode's nodes were last seen; tests stamp their tasks relative to it. */
export const NOW = 1_000_000;

/** A node of `tier` with 8B-parameter defaults, one task at a time, reputation 100. */
export function testNode(id: string, tier: NodeTier, capabilities: Partial<NodeCapabilities> = {}): LiveNode {
  const caps: NodeCapabilities = {
    modelName: `${id}-8B-Q4_K_M`,
    parameterCount: 8e9,
    quantization: "Q4_K_M",
    contextLength: 4096,
    tokensPerSecond: 20,
    maxConcurrentTasks: 1,
    gpus: [],
    backend: "test",
    agentVersion: "test",
    ...capabilities,
  };
  const keys = { toNode: createSecretKey(randomBytes(32)), toCoordinator: createSecretKey(randomBytes(32)) };
  return new LiveNode(
    id,
    "account",
    `session-${id}`,
    tier,
    "test",
    caps,
    100,
    keys,
    new Channel<ConnectResponse>(),
    NOW,
  );
}

/** When liveNode's nodes were last seen; the seeded network's tasks and events are stamped in seconds after it. */
export const T0 = Date.parse("2030-01-01T00:00:00Z");

const idleSink: TaskSink = { chunk() {}, result() {}, error() {}, lost() {} };

/** A 13B node on an RTX 4090 of `accountId`, four tasks at a time, `runningTasks` of them taken. */
export function liveNode(
  id: string,
  accountId: string,
  tier: NodeTier,
  reputation: number,
  runningTasks: number,
): LiveNode {
  const node = new LiveNode(
    id,
    accountId,
    `session-${id}`,
    tier,
    "test",
    {
      modelName: `${id}-model.Q4_K_M`,
      parameterCount: 13_000_000_000,
      quantization: "Q4_K_M",
      contextLength: 8192,
      tokensPerSecond: 33.5,
      maxConcurrentTasks: 4,
      gpus: [{ name: "RTX 4090", vramTotalMb: 24_564, vramUsedMb: 9_000, utilizationPercent: 61 }],
      backend: "openai",
      agentVersion: "0.1.0",
    },
    reputation,
    { toNode: createSecretKey(randomBytes(32)), toCoordinator: createSecretKey(randomBytes(32)) },
    new Channel<ConnectResponse>(),
    T0,
  );
  node.load = runningTasks / 4;
  for (let i = 0; i < runningTasks; i++) node.tasks.set(`${id}-task-${i}`, idleSink);
  return node;
}
