// Who the node is and what it serves, as the agent registers it (the connection sends it; register-message.ts encodes
// it).
import type { KeyObject } from "node:crypto";
import type { TokenizerRates } from "../common/tokenizer-rates.ts";
import type { Gpu } from "./gpu.ts";

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
  /** Measured with the model's tokenizer (agent/tokenizer-rates.ts); undefined when the backend has none. */
  tokenizerRates?: TokenizerRates;
  /** The model file's fingerprint (agent/model-info.ts); undefined when the agent cannot read the file. */
  modelSha256?: string;
  /** The node's X25519 key pair (NODE_KEY_PATH). */
  key: { privateKey: KeyObject; publicKey: Uint8Array };
}
