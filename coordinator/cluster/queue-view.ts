// The cluster's queue: every coordinator publishes its waiting requests (whole, on each change and every
// CLUSTER_VIEW_MS while any wait) and keeps the others', so that a free node goes to the earliest waiter that can
// take it, wherever it waits, and a position counts every request ahead (coordinator/tasks/queue.ts).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { ClusterQueueSchema, ClusterRouteSchema, type ClusterRoute } from "../../gen/iris/v1/cluster_pb.ts";
import type { LiveNode } from "../nodes/registry.ts";
import type { QueuedWaiter, QueuePeers } from "../tasks/queue.ts";
import { eligible, type RouteRequest } from "../tasks/router.ts";
import type { Bus, ClusterSubjects } from "./bus.ts";
import { difficultyFromProto, difficultyToProto } from "../../common/vocabulary.ts";

export interface QueueViewContext {
  bus: Bus;
  subjects: ClusterSubjects;
  instance: string;
  logger: Logger;
  viewMs: number;
}

export class QueueView implements QueuePeers {
  /** The other coordinators' waiters, by coordinator, oldest first. */
  readonly #queues = new Map<string, QueuedWaiter[]>();
  readonly #listeners = new Set<() => void>();
  #own: readonly QueuedWaiter[] = [];
  #scheduled = false;
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: () => void;

  constructor(private readonly ctx: QueueViewContext) {
    this.#unsubscribe = ctx.bus.subscribe(ctx.subjects.queue, (data) => {
      try {
        this.#receive(data);
      } catch (err) {
        ctx.logger.error({ err }, "cluster bus: could not apply a queue");
      }
    });
    // a peer that missed a change (it joined since) catches up while anyone waits here
    this.#timer = setInterval(() => this.#own.length > 0 && this.#send(), ctx.viewMs);
    this.#timer.unref();
  }

  /** Whether any other coordinator has requests waiting. */
  get othersWaiting(): boolean {
    for (const waiters of this.#queues.values()) if (waiters.length > 0) return true;
    return false;
  }

  countBefore(since: number): number {
    let count = 0;
    for (const waiters of this.#queues.values()) for (const waiter of waiters) if (waiter.since < since) count++;
    return count;
  }

  aheadFor(node: LiveNode, since: number): number {
    if (this.#queues.size === 0 || node.freeSlots <= 0) return 0;
    let count = 0;
    for (const waiters of this.#queues.values()) {
      for (const waiter of waiters) if (waiter.since < since && eligible(node, waiter.request)) count++;
    }
    return count;
  }

  publish(waiters: readonly QueuedWaiter[]): void {
    this.#own = waiters;
    if (this.#scheduled) return;
    this.#scheduled = true;
    // the changes of one turn of the event loop in one message
    setImmediate(() => {
      this.#scheduled = false;
      this.#send();
    });
  }

  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  /** A coordinator left (or fell silent): its waiters no longer come first. */
  drop(home: string): void {
    if (this.#queues.delete(home)) this.#changed();
  }

  /** A coordinator joined: it hears our queue now. */
  joined(): void {
    if (this.#own.length > 0) this.publish(this.#own);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
    // peers stop counting our waiters at once
    this.#own = [];
    this.#send();
  }

  #send(): void {
    const message = create(ClusterQueueSchema, {
      home: this.ctx.instance,
      waiters: this.#own.map((w) => ({
        id: w.id,
        enqueuedAtUnixMs: BigInt(Math.round(w.since)),
        route: routeOf(w.request),
      })),
    });
    this.ctx.bus.publish(this.ctx.subjects.queue, toBinary(ClusterQueueSchema, message));
  }

  #receive(data: Uint8Array): void {
    const queue = fromBinary(ClusterQueueSchema, data);
    if (queue.home === this.ctx.instance) return;
    const waiters = queue.waiters.flatMap((w) => {
      const request = w.route && requestOf(w.route);
      return request ? [{ id: w.id, since: Number(w.enqueuedAtUnixMs), request }] : [];
    });
    if (waiters.length === 0 && !this.#queues.has(queue.home)) return;
    if (waiters.length === 0) this.#queues.delete(queue.home);
    else this.#queues.set(queue.home, waiters);
    this.#changed();
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}

export function routeOf(request: RouteRequest): ClusterRoute {
  const { context: c, sameModel } = request;
  return create(ClusterRouteSchema, {
    difficulty: difficultyToProto[request.difficulty],
    model: request.model ?? "",
    exclude: [...request.exclude],
    ...(sameModel
      ? {
          sameModel: {
            modelName: sameModel.modelName,
            quantization: sameModel.quantization,
            modelSha256: sameModel.modelSha256 ?? "",
          },
        }
      : {}),
    ...(request.reputationAbove !== undefined ? { reputationAbove: request.reputationAbove } : {}),
    ...(c
      ? {
          context: {
            asciiChars: c.asciiChars,
            otherChars: c.otherChars,
            messages: c.messages,
            answerTokens: c.answerTokens,
          },
        }
      : {}),
    ...(request.minContext !== undefined ? { minContext: request.minContext } : {}),
  });
}

/** The route a peer's waiter needs; undefined for one this code cannot read (a newer difficulty). */
export function requestOf(route: ClusterRoute): RouteRequest | undefined {
  const difficulty = difficultyFromProto(route.difficulty);
  if (!difficulty) return undefined;
  const same = route.sameModel;
  const c = route.context;
  return {
    difficulty,
    model: route.model || undefined,
    exclude: new Set(route.exclude),
    ...(same
      ? {
          sameModel: {
            modelName: same.modelName,
            quantization: same.quantization,
            ...(same.modelSha256 ? { modelSha256: same.modelSha256 } : {}),
          },
        }
      : {}),
    ...(route.reputationAbove !== undefined ? { reputationAbove: route.reputationAbove } : {}),
    ...(c
      ? {
          context: {
            asciiChars: c.asciiChars,
            otherChars: c.otherChars,
            messages: c.messages,
            answerTokens: c.answerTokens,
          },
        }
      : {}),
    ...(route.minContext !== undefined ? { minContext: route.minContext } : {}),
  };
}
