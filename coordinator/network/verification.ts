// What the network reports of a node's declared capability against what the coordinator measured (NodeVerification):
// for live nodes from their measurements, for offline ones from the snapshot in their row.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Verification, type NodeVerificationSchema } from "../../gen/iris/v1/network_pb.ts";
import {
  contextVerdict,
  modelVerdict,
  speedVerdict,
  type Verification as VerificationName,
} from "../nodes/capability.ts";
import { NodeMeasurements } from "../nodes/measurements.ts";
import type { LiveNode } from "../nodes/registry.ts";
import { sameModel, type ModelIdentity } from "../tasks/router.ts";

export type NodeVerificationInit = MessageInitShape<typeof NodeVerificationSchema>;

const verificationEnum: Record<VerificationName, Verification> = {
  declared: Verification.DECLARED,
  verified: Verification.VERIFIED,
  contradicted: Verification.CONTRADICTED,
  inferred: Verification.INFERRED,
};

export interface Declared extends ModelIdentity {
  tokensPerSecond: number;
  contextLength: number;
}

/**
 * How many other live nodes serving the same name and quantization send the same file fingerprint, and how many
 * another.
 */
export function fingerprintPeers(
  model: ModelIdentity,
  selfId: string,
  nodes: Iterable<LiveNode>,
): { same: number; different: number } {
  const counts = { same: 0, different: 0 };
  if (!model.modelSha256) return counts;
  for (const node of nodes) {
    const c = node.capabilities;
    if (
      node.id === selfId ||
      !node.connected ||
      !c.modelSha256 ||
      c.modelName !== model.modelName ||
      c.quantization !== model.quantization
    )
      continue;
    if (sameModel({ modelName: c.modelName, quantization: c.quantization, modelSha256: c.modelSha256 }, model))
      counts.same++;
    else counts.different++;
  }
  return counts;
}

export function nodeVerification(
  declared: Declared,
  measured: NodeMeasurements,
  size: VerificationName,
  fingerprints: { same: number; different: number },
): NodeVerificationInit {
  const speed = speedVerdict(declared.tokensPerSecond, measured.speedSamples);
  const model = modelVerdict(measured.identity, fingerprints);
  const context = contextVerdict(declared.contextLength, measured.provenContext, measured.refusedContext);
  return {
    speed: verificationEnum[speed.verification],
    measuredTokensPerSecond: Math.round(speed.measured * 10) / 10,
    speedSamples: speed.samples,
    size: verificationEnum[size],
    model: verificationEnum[model.verification],
    modelEvidence: model.evidence,
    modelSha256: declared.modelSha256 ?? "",
    context: verificationEnum[context.verification],
    provenContextTokens: measured.provenContext,
  };
}

/**
 * An offline node's verification from its row: the stored snapshot (kept only when it is of the model the row
 * names). Whether its size was parsed is not kept: an offline node's size reads as declared.
 */
export function storedVerification(declared: Declared, modelKey: string, stored: unknown): NodeVerificationInit {
  return nodeVerification(declared, new NodeMeasurements(modelKey, stored), "declared", { same: 0, different: 0 });
}
