// What a node declares when it registers (NodeService Register), as the registry's capabilities: its model, size and
// quantization (parsed from the model name where it left them out), context, speed, slots, GPUs and tokenizer rates.
import type { Register } from "../../gen/iris/v1/node_pb.ts";
import { sizeOf, type Verification } from "./capability.ts";
import { gpusOf } from "./gpus.ts";
import type { NodeCapabilities } from "./registry.ts";

/** The declaration, with a size or quantization it left out parsed from the model name (`size` says which). */
export function capabilitiesOf(register: Register): { capabilities: NodeCapabilities; size: Verification } {
  const { parameterCount, quantization, size } = sizeOf({
    modelName: register.modelName,
    parameterCount: Number(register.parameterCount),
    quantization: register.quantization,
  });
  return { capabilities: declaredCapabilities(register, parameterCount, quantization), size };
}

function declaredCapabilities(register: Register, parameterCount: number, quantization: string): NodeCapabilities {
  return {
    modelName: register.modelName,
    parameterCount,
    quantization,
    ...(register.modelSha256 ? { modelSha256: register.modelSha256 } : {}),
    contextLength: register.contextLength,
    tokensPerSecond: register.benchmarkTokensPerSecond,
    maxConcurrentTasks: register.maxConcurrentTasks,
    gpus: gpusOf(register.gpus),
    backend: register.backend,
    agentVersion: register.agentVersion,
    ...(register.tokenizerRates
      ? {
          tokenizerRates: {
            asciiCharsPerToken: register.tokenizerRates.asciiCharsPerToken,
            otherCharsPerToken: register.tokenizerRates.otherCharsPerToken,
          },
        }
      : {}),
  };
}
