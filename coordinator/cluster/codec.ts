// A live node as the cluster view carries it, and back: the fields routing reads, nothing secret (no account key).
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Tier } from "../../gen/iris/v1/common_pb.ts";
import {
  ClusterNodeSchema,
  type ClusterMeasurements,
  type ClusterMeasurementsSchema,
  type ClusterNode,
} from "../../gen/iris/v1/cluster_pb.ts";
import type { NodeTier } from "../../common/vocabulary.ts";
import type { Verification } from "../nodes/capability.ts";
import { gpusOf } from "../nodes/gpus.ts";
import type { MeasuredSnapshot } from "../nodes/measurements.ts";
import type { LiveNode, NodeCapabilities } from "../nodes/registry.ts";
import { tierFromProto, tierToProto } from "../../common/vocabulary.ts";

const verifications: readonly string[] = ["declared", "verified", "contradicted", "inferred"] satisfies Verification[];

export function tierOf(tier: Tier): NodeTier {
  return tierFromProto(tier) ?? "BASIC";
}

export function verificationOf(size: string): Verification {
  return verifications.includes(size) ? (size as Verification) : "declared";
}

/** The home's node as its peers see it. */
export function clusterNodeOf(node: LiveNode): ClusterNode {
  const c = node.capabilities;
  return create(ClusterNodeSchema, {
    nodeId: node.id,
    accountId: node.accountId,
    sessionId: node.sessionId,
    publicKey: node.publicKey,
    registeredAtUnixMs: BigInt(node.registeredAt),
    tier: tierToProto[node.tier],
    tierReason: node.tierReason,
    capabilities: {
      modelName: c.modelName,
      parameterCount: BigInt(Math.max(0, Math.round(c.parameterCount))),
      quantization: c.quantization,
      modelSha256: c.modelSha256 ?? "",
      contextLength: c.contextLength,
      tokensPerSecond: c.tokensPerSecond,
      maxConcurrentTasks: c.maxConcurrentTasks,
      gpus: c.gpus.map((g) => ({
        name: g.name,
        vramTotalMb: BigInt(g.vramTotalMb),
        vramUsedMb: BigInt(g.vramUsedMb),
        utilizationPercent: g.utilizationPercent,
      })),
      backend: c.backend,
      agentVersion: c.agentVersion,
      ...(c.tokenizerRates ? { tokenizerRates: c.tokenizerRates } : {}),
    },
    reputation: node.reputation,
    suspended: node.suspended,
    paused: node.paused,
    load: node.load,
    size: node.size,
    measured: measurementsOf(node.measured.snapshot()),
    running: [...node.tasks].map(([taskId, sink]) => ({
      taskId,
      startedAtUnixMs: BigInt(Math.round(sink.startedAt ?? node.lastSeenAt)),
    })),
    serviceTimesMs: node.serviceTimes.map((ms) => Math.min(0xffff_ffff, Math.round(ms))),
    lastSeenUnixMs: BigInt(node.lastSeenAt),
  });
}

export function measurementsOf(snapshot: MeasuredSnapshot): MessageInitShape<typeof ClusterMeasurementsSchema> {
  return {
    model: snapshot.model,
    speed: snapshot.speed,
    provenContext: snapshot.provenContext,
    ...(snapshot.refusedContext !== undefined ? { refusedContext: snapshot.refusedContext } : {}),
    ...(snapshot.identity
      ? {
          identityVerdict: snapshot.identity.verdict,
          identityPeer: snapshot.identity.peer,
          identityAtUnixMs: BigInt(snapshot.identity.at),
        }
      : {}),
  };
}

/** The snapshot NodeMeasurements restores from (it ignores one of another model). */
export function snapshotOf(measured: ClusterMeasurements | undefined): MeasuredSnapshot | undefined {
  if (!measured) return undefined;
  const verdict = measured.identityVerdict;
  return {
    model: measured.model,
    speed: [...measured.speed],
    provenContext: measured.provenContext,
    ...(measured.refusedContext !== undefined ? { refusedContext: measured.refusedContext } : {}),
    ...(verdict === "verified" || verdict === "contradicted"
      ? { identity: { verdict, peer: measured.identityPeer, at: Number(measured.identityAtUnixMs) } }
      : {}),
  };
}

export function capabilitiesOf(node: ClusterNode): NodeCapabilities {
  const c = node.capabilities;
  return {
    modelName: c?.modelName ?? "",
    parameterCount: Number(c?.parameterCount ?? 0n),
    quantization: c?.quantization ?? "",
    ...(c?.modelSha256 ? { modelSha256: c.modelSha256 } : {}),
    contextLength: c?.contextLength ?? 0,
    tokensPerSecond: c?.tokensPerSecond ?? 0,
    maxConcurrentTasks: c?.maxConcurrentTasks ?? 1,
    gpus: gpusOf(node.capabilities?.gpus ?? []),
    backend: c?.backend ?? "",
    agentVersion: c?.agentVersion ?? "",
    ...(c?.tokenizerRates
      ? {
          tokenizerRates: {
            asciiCharsPerToken: c.tokenizerRates.asciiCharsPerToken,
            otherCharsPerToken: c.tokenizerRates.otherCharsPerToken,
          },
        }
      : {}),
  };
}

/** Whether two views of a node's measurements say the same (a node's view is applied again unchanged). */
export function sameMeasurements(a: ClusterMeasurements | undefined, b: ClusterMeasurements): boolean {
  return (
    a !== undefined &&
    a.model === b.model &&
    a.provenContext === b.provenContext &&
    a.refusedContext === b.refusedContext &&
    a.identityVerdict === b.identityVerdict &&
    a.identityPeer === b.identityPeer &&
    a.identityAtUnixMs === b.identityAtUnixMs &&
    a.speed.length === b.speed.length &&
    a.speed.every((speed, i) => speed === b.speed[i])
  );
}
