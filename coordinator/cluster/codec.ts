// A live node as the cluster view carries it, and back: the fields routing reads, nothing secret (no account key);
// and a view's headline, read without its nodes.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { Tier } from "../../gen/iris/v1/common_pb.ts";
import {
  ClusterNodeSchema,
  type ClusterView,
  ClusterViewSchema,
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

/** A view's fields other than its nodes and gone ids: what a peer reads first (view-receiver.ts). */
export type ViewHeadline = Omit<ClusterView, "nodes" | "gone" | "$typeName" | "$unknown">;

const VIEW = ClusterViewSchema.field;

/**
 * The headline of an encoded ClusterView, its nodes and gone ids skipped over unread (a full view of 10,000 nodes:
 * the entries' tags and lengths, not their ~2.3 MB decoded). A field of an unexpected wire type is skipped; a message
 * cut short throws, as fromBinary would.
 */
export function readViewHeadline(data: Uint8Array): ViewHeadline {
  const head: ViewHeadline = {
    home: "",
    coordinatorPublicKey: new Uint8Array(0),
    full: false,
    incarnation: "",
    sequence: 0n,
    nodeCount: 0,
    part: 0,
    parts: 0,
    askers: [],
  };
  const reader = new BinaryReader(data);
  while (reader.pos < reader.len) {
    const [field, type] = reader.tag();
    const varint = type === WireType.Varint;
    const delimited = type === WireType.LengthDelimited;
    if (field === VIEW.home.number && delimited) head.home = reader.string();
    else if (field === VIEW.coordinatorPublicKey.number && delimited) head.coordinatorPublicKey = reader.bytes();
    else if (field === VIEW.full.number && varint) head.full = reader.bool();
    else if (field === VIEW.incarnation.number && delimited) head.incarnation = reader.string();
    else if (field === VIEW.sequence.number && varint) head.sequence = BigInt(reader.uint64());
    else if (field === VIEW.nodeCount.number && varint) head.nodeCount = reader.uint32();
    else if (field === VIEW.part.number && varint) head.part = reader.uint32();
    else if (field === VIEW.parts.number && varint) head.parts = reader.uint32();
    else if (field === VIEW.askers.number && delimited) head.askers.push(reader.string());
    else reader.skip(type, field);
  }
  return head;
}
