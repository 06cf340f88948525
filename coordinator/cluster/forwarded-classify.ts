// Classify assigns through a node's home coordinator: another coordinator's node link asks a node here (the prompt is
// sealed for the node, as a task's payload is), and the node's answer goes back to the coordinator that asked,
// instead of to this coordinator's own node link, which did not.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ClusterFromNodeSchema } from "../../gen/iris/v1/cluster_pb.ts";
import type { Difficulty } from "../../gen/iris/v1/common_pb.ts";
import type { ConnectResponse } from "../../gen/iris/v1/node_pb.ts";
import type { LiveNode, NodeRegistry } from "../nodes/registry.ts";

/** Where a node's classify results go (NodeService feeds it; the classifier chain's node link implements it). */
export interface ClassifyResults {
  /** Whether the result was expected (from that node, for an assign still open). */
  resolveClassifyResult(classifyId: string, difficulty: Difficulty, fromNodeId: string): boolean;
  /** The node's connection here ended. */
  nodeGone(nodeId: string): void;
}

type FromNodeInit = MessageInitShape<typeof ClusterFromNodeSchema>;

interface Forwarded {
  origin: string;
  nodeId: string;
  sessionId: string;
  expiry: NodeJS.Timeout;
}

/** Past its deadline an assign's answer is ignored by the asker; the home forgets it a little later. */
const GRACE_MS = 1_000;
/** An assign's deadline is the asker's budget (CLASSIFIER_NODE_BUDGET_MS); a longer one is kept no longer than this. */
const MAX_KEEP_MS = 60_000;
/** Open forwarded assigns at most: each node takes one per asking coordinator at a time, so this is never reached. */
const MAX_OPEN = 10_000;

/** At a node's home: the classify assigns other coordinators sent to its nodes, until answered or expired. */
export class ForwardedClassifies {
  readonly #open = new Map<string, Forwarded>();

  constructor(
    private readonly ctx: {
      registry: NodeRegistry;
      /** Publishes a node's message to the coordinator that asked. */
      publish: (origin: string, message: FromNodeInit) => void;
      now?: () => number;
    },
  ) {}

  /** Passes the assign on to the node; its answer will go to `origin`. */
  forward(origin: string, node: LiveNode, response: ConnectResponse): void {
    if (response.message.case !== "classifyAssign") return;
    const { classifyId, deadlineUnixMs } = response.message.value;
    if (this.#open.has(classifyId) || this.#open.size >= MAX_OPEN) return; // the asker's deadline ends it
    const keepMs = Math.min(MAX_KEEP_MS, Math.max(0, Number(deadlineUnixMs) - (this.ctx.now ?? Date.now)()));
    const expiry = setTimeout(() => this.#open.delete(classifyId), keepMs + GRACE_MS);
    expiry.unref();
    this.#open.set(classifyId, { origin, nodeId: node.id, sessionId: node.sessionId, expiry });
    if (!node.send(response)) this.#close(classifyId);
  }

  /** A node here answered: true when the assign was forwarded (the answer goes back to its asker). */
  resolve(classifyId: string, difficulty: Difficulty, fromNodeId: string): boolean {
    const open = this.#open.get(classifyId);
    // a node answers only what it was asked, over the connection it was asked on
    if (!open || open.nodeId !== fromNodeId) return false;
    this.#close(classifyId);
    if (this.ctx.registry.get(fromNodeId)?.sessionId !== open.sessionId) return true;
    this.ctx.publish(open.origin, {
      nodeId: open.nodeId,
      sessionId: open.sessionId,
      taskId: classifyId,
      message: {
        case: "request",
        value: { message: { case: "classifyResult", value: { classifyId, difficulty } } },
      },
    });
    return true;
  }

  /** The node left: its open assigns are dropped (the askers drop the node when its home's view says so). */
  nodeGone(nodeId: string): void {
    for (const [classifyId, open] of this.#open) if (open.nodeId === nodeId) this.#close(classifyId);
  }

  /** The asker is gone (left, fell silent, restarted): nobody waits for these answers. */
  originGone(origin: string): void {
    for (const [classifyId, open] of this.#open) if (open.origin === origin) this.#close(classifyId);
  }

  get size(): number {
    return this.#open.size;
  }

  stop(): void {
    for (const classifyId of [...this.#open.keys()]) this.#close(classifyId);
  }

  #close(classifyId: string): void {
    const open = this.#open.get(classifyId);
    if (!open) return;
    clearTimeout(open.expiry);
    this.#open.delete(classifyId);
  }
}
