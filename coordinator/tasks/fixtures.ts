// Test-only live nodes for the routing, queue-estimate and context-fit tests (no connection behind them).
import { createSecretKey, randomBytes } from "node:crypto";
import { Channel } from "../../common/channel.ts";
import type { ConnectResponse } from "../../gen/iris/v1/node_pb.ts";
import type { NodeTier } from "../../common/vocabulary.ts";
import { LiveNode, type NodeCapabilities } from "../nodes/registry.ts";

/** When the test nodes were last seen; tests stamp their tasks relative to it. */
export const NOW = 1_000_000;

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
  return new LiveNode(id, "account", `session-${id}`, tier, "test", caps, 100, keys, new Channel<ConnectResponse>(), NOW);
}
