// Frames between a node and the coordinator that assigned it a task, through the node's home coordinator: the
// assign and cancels go home (ClusterToHome) and on to the node; its chunks, result or error come back
// (ClusterFromNode). Classify assigns and their answers travel the same way (forwarded-classify.ts). The home never
// opens them: every coordinator of a cluster holds the same key.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import {
  ClusterAssignReplySchema,
  ClusterFromNodeSchema,
  ClusterToHomeSchema,
  type ClusterAssignReply,
  type ClusterFromNode,
} from "../../gen/iris/v1/cluster_pb.ts";
import type { ConnectResponse } from "../../gen/iris/v1/node_pb.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import { BusError, type Bus, type ClusterSubjects } from "./bus.ts";
import { ForwardedClassifies, type ClassifyResults } from "./forwarded-classify.ts";
import { HomeSide, type FromNodeInit } from "./home-side.ts";
import { ElsewhereTask, RemoteNode, type HomeLink, type ToHome } from "./remote-node.ts";

export interface ForwardingContext {
  bus: Bus;
  subjects: ClusterSubjects;
  /** This coordinator's COORDINATOR_INSTANCE. */
  instance: string;
  registry: NodeRegistry;
  logger: Logger;
  /** How long a forwarded assign may wait for the home's answer (CLUSTER_ASSIGN_TIMEOUT_MS). */
  assignTimeoutMs: number;
  /** This coordinator's classifier node link: the answers of the nodes it asked elsewhere go there. */
  classifyLink?: ClassifyResults;
}

export interface Forwarding {
  link: HomeLink;
  /** Where NodeService sends the classify results of nodes here: to the coordinator that asked, wherever it is. */
  classifyResults: ClassifyResults;
  /** A coordinator fell silent: the tasks it assigned to nodes here are cancelled. */
  originGone(origin: string): void;
  stop(): void;
}

/** Both ends of forwarding on this coordinator: home of its own nodes (home-side.ts), assigner to others'. */
export function startForwarding(ctx: ForwardingContext): Forwarding {
  const { bus, subjects, instance, registry, logger } = ctx;
  const publishFromNode = (origin: string, message: FromNodeInit) =>
    bus.publish(subjects.origin(origin), toBinary(ClusterFromNodeSchema, create(ClusterFromNodeSchema, message)));
  const classifies = new ForwardedClassifies({ registry, publish: publishFromNode });
  const home = new HomeSide(instance, registry, publishFromNode, classifies);

  const guarded = (what: string, handle: (data: Uint8Array) => void) => (data: Uint8Array) => {
    try {
      handle(data);
    } catch (err) {
      logger.error({ err }, `cluster bus: could not handle ${what}`);
    }
  };
  const unsubscribe = [
    bus.serve(subjects.assign(instance), (data) => home.assign(data)),
    bus.subscribe(
      subjects.home(instance),
      guarded("a message for a node here", (data) => home.toHome(data)),
    ),
    bus.subscribe(
      subjects.origin(instance),
      guarded("a node's message from its home", (data) => fromNode(ctx, data)),
    ),
  ];

  const classifyResults: ClassifyResults = {
    resolveClassifyResult: (classifyId, difficulty, fromNodeId) =>
      classifies.resolve(classifyId, difficulty, fromNodeId) ||
      (ctx.classifyLink?.resolveClassifyResult(classifyId, difficulty, fromNodeId) ?? false),
    nodeGone(nodeId) {
      classifies.nodeGone(nodeId);
      ctx.classifyLink?.nodeGone(nodeId);
    },
  };

  return {
    link: homeLink(ctx),
    classifyResults,
    originGone: (origin) => home.originGone(origin),
    stop: () => {
      for (const off of unsubscribe) off();
      classifies.stop();
    },
  };
}

/** At the assigner: a remote node's message, from its home, for the task (or classify assign) it runs for us. */
function fromNode(ctx: ForwardingContext, data: Uint8Array): void {
  const message: ClusterFromNode = fromBinary(ClusterFromNodeSchema, data);
  const node = ctx.registry.get(message.nodeId);
  if (!(node instanceof RemoteNode) || node.sessionId !== message.sessionId) return;
  const m = message.message;
  if (m.case === "request" && m.value.message.case === "classifyResult") {
    const { classifyId, difficulty } = m.value.message.value;
    ctx.classifyLink?.resolveClassifyResult(classifyId, difficulty, node.id);
    return;
  }
  const sink = node.tasks.get(message.taskId);
  // ended here already: late frames are ignored, as from a local node
  if (!sink || sink instanceof ElsewhereTask) return;
  if (m.case === "lost") {
    sink.lost(m.value);
    return;
  }
  if (m.case !== "request") return;
  const inner = m.value.message;
  if (inner.case === "chunk") sink.chunk(inner.value);
  else if (inner.case === "result") sink.result(inner.value);
  else if (inner.case === "error") sink.error(inner.value);
}

/** The way from this coordinator to the homes of the remote nodes it routes to. */
function homeLink(ctx: ForwardingContext): HomeLink {
  const { bus, subjects, instance, logger } = ctx;
  const link: HomeLink = {
    send(node: RemoteNode, message: ToHome) {
      const init = create(ClusterToHomeSchema, {
        origin: instance,
        nodeId: node.id,
        sessionId: node.sessionId,
        taskId: message.taskId ?? "",
        message: message.message,
      });
      bus.publish(subjects.home(node.home), toBinary(ClusterToHomeSchema, init));
    },
    async assign(node: RemoteNode, taskId: string, assign: ConnectResponse): Promise<ClusterAssignReply> {
      const request = create(ClusterToHomeSchema, {
        origin: instance,
        nodeId: node.id,
        sessionId: node.sessionId,
        taskId,
        message: { case: "response", value: assign },
      });
      try {
        return fromBinary(
          ClusterAssignReplySchema,
          await bus.request(subjects.assign(node.home), toBinary(ClusterToHomeSchema, request), ctx.assignTimeoutMs),
        );
      } catch (err) {
        // too large for the bus: the home never heard of it (the node stays routable for other tasks)
        if (!(err instanceof BusError) || err.kind === "too-large") throw err;
        // the home is unreachable: it is as good as gone for this connection (its nodes expire with it)
        logger.warn(
          { nodeId: node.id, home: node.home, err: err.message },
          "cluster bus: a node's home did not take the assign",
        );
        // a late acceptance would run the task for nobody: release it
        link.send(node, { taskId, message: { case: "release", value: true } });
        return create(ClusterAssignReplySchema, { accepted: false, gone: true, reason: err.message });
      }
    },
  };
  return link;
}
