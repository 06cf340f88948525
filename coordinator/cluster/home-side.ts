// The home's part of forwarding (forwarding.ts): tasks other coordinators assign to the nodes connected here pass on
// to them unopened, the nodes' messages about those tasks go back to the assigner, and what the assigners say about a
// node (cancels, releases, suspensions, measurements) reaches it here.
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ClusterAssignReplySchema,
  type ClusterFromNodeSchema,
  ClusterToHomeSchema,
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
import type { ForwardedClassifies } from "./forwarded-classify.ts";

export type FromNodeInit = MessageInitShape<typeof ClusterFromNodeSchema>;
/** Publishes a ClusterFromNode to the coordinator `origin` (the one that assigned the task). */
export type PublishFromNode = (origin: string, message: FromNodeInit) => void;

type Measured = Extract<ClusterToHome["message"], { case: "measured" }>["value"]["sample"];

/** At the home: a task another coordinator assigned to a node here; the node's messages about it go back there. */
class ForwardedTask implements TaskSink {
  readonly startedAt = Date.now();

  constructor(
    readonly origin: string,
    private readonly node: LiveNode,
    private readonly taskId: string,
    private readonly registry: NodeRegistry,
    private readonly publish: PublishFromNode,
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

export class HomeSide {
  constructor(
    /** This coordinator's COORDINATOR_INSTANCE. */
    private readonly instance: string,
    private readonly registry: NodeRegistry,
    private readonly publish: PublishFromNode,
    private readonly classifies: ForwardedClassifies,
  ) {}

  /** A task assign for a node here (a request): passed on, and the answer says whether the node took it. */
  assign(data: Uint8Array): Uint8Array {
    const message = fromBinary(ClusterToHomeSchema, data);
    const node = this.#localNode(message);
    if (!node)
      return reply({
        accepted: false,
        gone: true,
        reason: `node ${message.nodeId} is not connected to coordinator ${this.instance} over that session`,
      });
    if (message.message.case !== "response" || message.message.value.message.case !== "taskAssign")
      return reply({ accepted: false, reason: "not a task assign" });
    if (node.tasks.has(message.taskId))
      return reply({ accepted: false, reason: `task ${message.taskId} already runs on node ${node.id}` });
    if (node.freeSlots <= 0) return reply({ accepted: false, reason: "busy" });
    const task = new ForwardedTask(message.origin, node, message.taskId, this.registry, this.publish);
    node.tasks.set(message.taskId, task);
    if (!node.send(message.message.value)) {
      task.free();
      return reply({ accepted: false, gone: true, reason: `node ${node.id}'s stream is closed` });
    }
    return reply({ accepted: true });
  }

  /** Anything else an assigner says about a node here (a publish). */
  toHome(data: Uint8Array): void {
    const message = fromBinary(ClusterToHomeSchema, data);
    const node = this.#localNode(message);
    if (!node) return; // the node left (its assigners heard "lost"), or the message is about an older connection
    const m = message.message;
    const forwarded = node.tasks.get(message.taskId);
    const own = forwarded instanceof ForwardedTask && forwarded.origin === message.origin ? forwarded : undefined;
    switch (m.case) {
      case "response":
        if (m.value.message.case === "classifyAssign") {
          this.classifies.forward(message.origin, node, m.value);
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
        this.#update(node, m.value);
        return;
      case "measured":
        this.#measured(node, m.value.sample);
        return;
      case undefined:
        return;
    }
  }

  /** A coordinator fell silent: the tasks it assigned to nodes here run for nobody; they are cancelled. */
  originGone(origin: string): void {
    this.classifies.originGone(origin);
    for (const node of this.registry.nodes()) {
      if (node.remote) continue;
      for (const [taskId, sink] of [...node.tasks]) {
        if (sink instanceof ForwardedTask && sink.origin === origin && sink.free())
          node.send(cancel(taskId, `the coordinator ${origin} that assigned the task is gone`));
      }
    }
  }

  /** The node here the sender means: connected to this coordinator, over the same connection. */
  #localNode(message: ClusterToHome): LiveNode | undefined {
    const node = this.registry.get(message.nodeId);
    return node && !node.remote && node.connected && node.sessionId === message.sessionId ? node : undefined;
  }

  /** An admin's word on the node, given on another coordinator (suspension, ClearNode, MoveNode). */
  #update(node: LiveNode, update: Extract<ClusterToHome["message"], { case: "update" }>["value"]): void {
    if (update.disconnectMessage) {
      node.disconnect(new ConnectError(update.disconnectMessage, update.disconnectCode || Code.PermissionDenied));
      return;
    }
    if (update.suspended !== undefined) node.suspended = update.suspended;
    if (update.reputation !== undefined) node.reputation = update.reputation;
    if (update.suspended === false) this.registry.notifyCapacity();
  }

  /** What an assigner measured of the node: the home keeps (and writes) its measurements. */
  #measured(node: LiveNode, sample: Measured): void {
    if (sample.case === "answered") {
      if (!node.measured.answered(sample.value.speed, sample.value.contextTokens)) return;
    } else if (sample.case === "refusedTokens") node.measured.refused(sample.value);
    else if (sample.case === "servedMs") {
      node.served(sample.value);
      return;
    } else if (sample.case === "compared") {
      const { identityVerdict: verdict, identityPeer: peer, identityAtUnixMs: at } = sample.value;
      if (verdict !== "verified" && verdict !== "contradicted") return;
      node.measured.compared({ verdict, peer, at: Number(at) });
    } else return;
    this.registry.measured(node);
  }
}

function cancel(taskId: string, reason: string): ConnectResponse {
  return create(ConnectResponseSchema, { message: { case: "cancel", value: { taskId, reason } } });
}
