// Frames between a node and the coordinator that assigned it a task, through the node's home coordinator: the
// assign and cancels go home (ClusterToHome) and on to the node; its chunks, result or error come back
// (ClusterFromNode). Classify assigns and their answers travel the same way (forwarded-classify.ts). The home never
// opens them: every coordinator of a cluster holds the same key.
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  ClusterAssignReplySchema,
  ClusterFromNodeSchema,
  ClusterToHomeSchema,
  type ClusterAssignReply,
  type ClusterFromNode,
  type ClusterToHome,
} from "../../gen/iris/v1/cluster_pb.ts";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  type ConnectResponse,
  type TaskChunk,
  type TaskError,
  type TaskResult,
} from "../../gen/iris/v1/node_pb.ts";
import type { LiveNode, NodeRegistry, TaskSink } from "../nodes/registry.ts";
import { BusError, type Bus, type ClusterSubjects } from "./bus.ts";
import { ForwardedClassifies, type ClassifyResults } from "./forwarded-classify.ts";
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

type FromNodeInit = MessageInitShape<typeof ClusterFromNodeSchema>;

/** At the home: a task another coordinator assigned to a node here; the node's messages about it go back there. */
class ForwardedTask implements TaskSink {
  readonly startedAt = Date.now();

  constructor(
    readonly origin: string,
    private readonly node: LiveNode,
    private readonly taskId: string,
    private readonly registry: NodeRegistry,
    private readonly publish: (origin: string, message: FromNodeInit) => void,
  ) {}

  chunk(chunk: TaskChunk): void {
    this.#send({ case: "chunk", value: chunk });
  }
  result(result: TaskResult): void {
    this.#send({ case: "result", value: result });
    this.free();
  }
  error(error: TaskError): void {
    this.#send({ case: "error", value: error });
    this.free();
  }
  lost(reason: string): void {
    this.publish(this.origin, {
      nodeId: this.node.id,
      sessionId: this.node.sessionId,
      taskId: this.taskId,
      message: { case: "lost", value: reason },
    });
  }

  /** The node is done with the task (or its assigner ended it): the slot is free. */
  free(): boolean {
    if (this.node.tasks.get(this.taskId) !== this) return false;
    this.node.tasks.delete(this.taskId);
    this.registry.notifyCapacity();
    return true;
  }

  #send(
    message: Extract<MessageInitShape<typeof ConnectRequestSchema>["message"], { case: "chunk" | "result" | "error" }>,
  ): void {
    const request = create(ConnectRequestSchema, { message });
    this.publish(this.origin, {
      nodeId: this.node.id,
      sessionId: this.node.sessionId,
      taskId: this.taskId,
      message: { case: "request", value: request },
    });
  }
}

const reply = (init: MessageInitShape<typeof ClusterAssignReplySchema>) =>
  toBinary(ClusterAssignReplySchema, create(ClusterAssignReplySchema, init));

export function startForwarding(ctx: ForwardingContext): {
  link: HomeLink;
  /** Where NodeService sends the classify results of nodes here: to the coordinator that asked, wherever it is. */
  classifyResults: ClassifyResults;
  originGone(origin: string): void;
  stop(): void;
} {
  const { bus, subjects, instance, registry, logger } = ctx;

  const publishFromNode = (origin: string, message: FromNodeInit) =>
    bus.publish(subjects.origin(origin), toBinary(ClusterFromNodeSchema, create(ClusterFromNodeSchema, message)));
  const classifies = new ForwardedClassifies({ registry, publish: publishFromNode });

  /** The node here the sender means: connected to this coordinator, over the same connection. */
  function localNode(message: ClusterToHome): LiveNode | undefined {
    const node = registry.get(message.nodeId);
    return node && !node.remote && node.connected && node.sessionId === message.sessionId ? node : undefined;
  }

  function assign(data: Uint8Array): Uint8Array {
    const message = fromBinary(ClusterToHomeSchema, data);
    const node = localNode(message);
    if (!node)
      return reply({
        accepted: false,
        gone: true,
        reason: `node ${message.nodeId} is not connected to coordinator ${instance} over that session`,
      });
    if (message.message.case !== "response" || message.message.value.message.case !== "taskAssign")
      return reply({ accepted: false, reason: "not a task assign" });
    if (node.tasks.has(message.taskId))
      return reply({ accepted: false, reason: `task ${message.taskId} already runs on node ${node.id}` });
    if (node.freeSlots <= 0) return reply({ accepted: false, reason: "busy" });
    const task = new ForwardedTask(message.origin, node, message.taskId, registry, publishFromNode);
    node.tasks.set(message.taskId, task);
    if (!node.send(message.message.value)) {
      task.free();
      return reply({ accepted: false, gone: true, reason: `node ${node.id}'s stream is closed` });
    }
    return reply({ accepted: true });
  }

  function toHome(data: Uint8Array): void {
    const message = fromBinary(ClusterToHomeSchema, data);
    const node = localNode(message);
    if (!node) return; // the node left (its assigners heard "lost"), or the message is about an older connection
    const m = message.message;
    const forwarded = node.tasks.get(message.taskId);
    const own = forwarded instanceof ForwardedTask && forwarded.origin === message.origin ? forwarded : undefined;
    switch (m.case) {
      case "response":
        if (m.value.message.case === "classifyAssign") {
          classifies.forward(message.origin, node, m.value);
          return;
        }
        if (m.value.message.case !== "cancel" || !own) return;
        own.free();
        node.send(m.value);
        return;
      case "release":
        // the assigner ended its attempt while the node still runs the task (an invalid answer): stop it
        if (own?.free()) node.send(cancel(message.taskId, `the coordinator ${message.origin} ended the task`));
        return;
      case "update":
        if (m.value.disconnectMessage) {
          node.disconnect(new ConnectError(m.value.disconnectMessage, m.value.disconnectCode || Code.PermissionDenied));
          return;
        }
        if (m.value.suspended !== undefined) node.suspended = m.value.suspended;
        if (m.value.reputation !== undefined) node.reputation = m.value.reputation;
        if (m.value.suspended === false) registry.notifyCapacity();
        return;
      case "measured":
        measured(node, m.value.sample);
        return;
      case undefined:
        return;
    }
  }

  function measured(
    node: LiveNode,
    sample: Extract<ClusterToHome["message"], { case: "measured" }>["value"]["sample"],
  ): void {
    if (sample.case === "answered") node.measured.answered(sample.value.speed, sample.value.contextTokens);
    else if (sample.case === "refusedTokens") node.measured.refused(sample.value);
    else if (sample.case === "servedMs") {
      node.served(sample.value);
      return;
    } else if (sample.case === "compared") {
      const { identityVerdict: verdict, identityPeer: peer, identityAtUnixMs: at } = sample.value;
      if (verdict !== "verified" && verdict !== "contradicted") return;
      node.measured.compared({ verdict, peer, at: Number(at) });
    } else return;
    registry.measured(node);
  }

  function fromNode(data: Uint8Array): void {
    const message: ClusterFromNode = fromBinary(ClusterFromNodeSchema, data);
    const node = registry.get(message.nodeId);
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

  const guarded = (what: string, handle: (data: Uint8Array) => void) => (data: Uint8Array) => {
    try {
      handle(data);
    } catch (err) {
      logger.error({ err }, `cluster bus: could not handle ${what}`);
    }
  };
  const unsubscribe = [
    bus.serve(subjects.assign(instance), assign),
    bus.subscribe(subjects.home(instance), guarded("a message for a node here", toHome)),
    bus.subscribe(subjects.origin(instance), guarded("a node's message from its home", fromNode)),
  ];

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
        if (!(err instanceof BusError)) throw err;
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
  /** A coordinator fell silent: the tasks it assigned to nodes here run for nobody; they are cancelled. */
  function originGone(origin: string): void {
    classifies.originGone(origin);
    for (const node of registry.nodes()) {
      if (node.remote) continue;
      for (const [taskId, sink] of [...node.tasks]) {
        if (sink instanceof ForwardedTask && sink.origin === origin && sink.free())
          node.send(cancel(taskId, `the coordinator ${origin} that assigned the task is gone`));
      }
    }
  }

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
    link,
    classifyResults,
    originGone,
    stop: () => {
      for (const off of unsubscribe) off();
      classifies.stop();
    },
  };
}

function cancel(taskId: string, reason: string): ConnectResponse {
  return create(ConnectResponseSchema, { message: { case: "cancel", value: { taskId, reason } } });
}
