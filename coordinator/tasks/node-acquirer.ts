// A node for a part: a free capable node at once, else a place in the wait queue until one frees up (or the wait
// runs out); either way an Attempt with the node's slot reserved.
import { Code, ConnectError } from "@connectrpc/connect";
import { Channel } from "../../common/channel.ts";
import type { Difficulty } from "../../common/vocabulary.ts";
import type { LiveNode, NodeRegistry } from "../nodes/registry.ts";
import { tiersServing } from "../nodes/tier.ts";
import { Attempt } from "./attempt.ts";
import type { PartEvent, PartSpec } from "./part-spec.ts";
import { WaitQueue, type QueuePeers, type Waiter } from "./queue.ts";
import { eligible, routeNow, type RouteRequest } from "./router.ts";
import { WaitEstimates } from "./wait-estimate.ts";

export interface QueueConfig {
  maxLength: number;
  maxWaitMs: number;
  /** How often a waiting request is told its position and estimate again (default 2 s). */
  updateMs?: number;
}

export interface NodeAcquirerDeps {
  registry: NodeRegistry;
  queue: QueueConfig;
  /** The other coordinators' waiting requests (a cluster): positions and free nodes are shared with them. */
  queuePeers?: QueuePeers;
  now: () => number;
}

/** When a part began to wait; kept across its tries (see acquire). */
export interface QueuedSince {
  since?: number;
}

type WaitEvent =
  | { kind: "position"; position: number }
  | { kind: "claimed"; attempt: Attempt }
  | { kind: "timeout" }
  | { kind: "aborted" };

export class NodeAcquirer {
  readonly #queue: WaitQueue;
  readonly #estimates: WaitEstimates;

  constructor(private readonly deps: NodeAcquirerDeps) {
    const { registry, queue, queuePeers, now } = deps;
    this.#queue = new WaitQueue(
      queue.maxLength,
      (difficulty) => registry.nodesWithRoom(difficulty),
      queue.updateMs ?? 2_000,
      queuePeers,
      now,
    );
    registry.onCapacity(() => this.#queue.drain());
    this.#estimates = new WaitEstimates(registry, now);
  }

  get queueLength(): number {
    return this.#queue.length;
  }

  /**
   * A node with a slot reserved for the task: at once when one is free, else after waiting in the queue (yielding
   * positions). `queued.since`: when this part began to wait. A part whose node's home coordinator refused it
   * (another took the slot first) waits again from its first place, not behind the requests that came since.
   */
  async *acquire(
    taskId: string,
    request: RouteRequest,
    spec: PartSpec,
    queued: QueuedSince,
  ): AsyncGenerator<PartEvent, Attempt, undefined> {
    const { registry, now } = this.deps;
    const node = routeNow(registry, request, this.#queue.opener());
    if (node) return new Attempt(taskId, node, registry, now);
    if (spec.wait === "never" || (spec.wait === "while-possible" && !this.anyEligible(request)))
      throw noEligibleNode(request);
    const { maxWaitMs } = this.deps.queue;
    const events = new Channel<WaitEvent>();
    const waiter: Waiter = {
      request,
      claim: (claimed: LiveNode) =>
        events.push({ kind: "claimed", attempt: new Attempt(taskId, claimed, registry, now) }),
      position: (position) => events.push({ kind: "position", position }),
    };
    queued.since ??= now();
    this.#queue.enqueue(waiter, queued.since);
    const waitUntil = now() + maxWaitMs;
    const timer = setTimeout(() => events.push({ kind: "timeout" }), maxWaitMs);
    const onAbort = () => events.push({ kind: "aborted" });
    spec.signal.addEventListener("abort", onAbort);
    if (spec.signal.aborted) onAbort();
    try {
      for await (const event of events) {
        if (event.kind === "claimed") return event.attempt;
        if (event.kind === "position") {
          const estimatedWaitMs = this.#estimates.estimate(request, event.position);
          yield {
            type: "queued",
            position: event.position,
            maxWaitMs: Math.max(0, waitUntil - now()),
            ...(estimatedWaitMs !== undefined ? { estimatedWaitMs } : {}),
          };
        } else if (event.kind === "aborted") throw new ConnectError("the client cancelled the request", Code.Canceled);
        else throw this.#noNodeError(request.difficulty, maxWaitMs);
      }
      throw new Error("the wait ended without a node");
    } finally {
      clearTimeout(timer);
      spec.signal.removeEventListener("abort", onAbort);
      this.#queue.remove(waiter);
      // a node claimed after we stopped waiting goes back
      events.close();
      for (let next = await events.next(); !next.done; next = await events.next()) {
        if (next.value.kind === "claimed") next.value.attempt.end();
      }
    }
  }

  /** Whether any connected node could take the task, busy or not. */
  anyEligible(request: RouteRequest): boolean {
    for (const node of this.deps.registry.nodes()) if (node.connected && eligible(node, request)) return true;
    return false;
  }

  #noNodeError(difficulty: Difficulty, waitedMs: number): ConnectError {
    const tiers = tiersServing(difficulty).join(" or ");
    const waited = `waited ${Math.round(waitedMs / 100) / 10} s`;
    if (this.deps.registry.anyServing(difficulty)) {
      return new ConnectError(
        `every node that serves ${difficulty} requests (tier ${tiers}) is busy; ${waited}; try again later`,
        Code.ResourceExhausted,
      );
    }
    return new ConnectError(
      `no node that serves ${difficulty} requests (tier ${tiers}) is online; ${waited}`,
      Code.Unavailable,
    );
  }
}

function noEligibleNode(request: RouteRequest): ConnectError {
  const model = request.sameModel
    ? ` serving ${request.sameModel.modelName} (${request.sameModel.quantization || "no quantization"})`
    : "";
  const above = request.reputationAbove !== undefined ? ` with reputation above ${request.reputationAbove}` : "";
  return new ConnectError(`no other free node${model}${above} can take this part now`, Code.Unavailable);
}
