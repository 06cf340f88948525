// What the agent tells the coordinator about itself: the Register message and GPU readings as the proto carries them.
import type { Gpu } from "./gpu.ts";
import type { NodeIdentity } from "./node-identity.ts";
import type { OutgoingMessage } from "./outgoing-message.ts";

type RegisterValue = Extract<OutgoingMessage, { case: "register" }>["value"];

export function registerMessage(identity: NodeIdentity): RegisterValue {
  return {
    nodeId: identity.nodeId,
    accountKey: identity.accountKey,
    modelName: identity.modelName,
    parameterCount: BigInt(Math.round(identity.parameterCount)),
    quantization: identity.quantization,
    contextLength: identity.contextLength,
    benchmarkTokensPerSecond: identity.tokensPerSecond,
    maxConcurrentTasks: identity.maxConcurrentTasks,
    gpus: gpuMessages(identity.gpus),
    agentVersion: identity.agentVersion,
    backend: identity.backend,
    promisedHoursUtc: identity.promisedHoursUtc,
    publicKey: identity.key.publicKey,
    tokenizerRates: identity.tokenizerRates,
    modelSha256: identity.modelSha256 ?? "",
  };
}

/** GPU readings as the Gpu message carries them (whole MiB and percent; at most 64, the proto's limit). */
export function gpuMessages(gpus: readonly Gpu[]): RegisterValue["gpus"] {
  return gpus.slice(0, 64).map((g) => ({
    name: g.name,
    vendor: g.vendor,
    vramTotalMb: BigInt(Math.max(0, Math.round(g.vramTotalMb))),
    vramUsedMb: BigInt(Math.max(0, Math.round(g.vramUsedMb))),
    utilizationPercent: Math.min(100, Math.max(0, Math.round(g.utilizationPercent))),
  }));
}
