// The bounded queue of requests waiting for a capable node, in arrival order, with positions.
import { Code, ConnectError } from "@connectrpc/connect";
import type { LiveNode } from "../nodes/registry.ts";
import type { RouteRequest } from "./router.ts";

export interface Waiter {
  request: RouteRequest;
  /** Takes the node: must reserve the slot synchronously, before any other waiter is considered. */
  claim(node: LiveNode): void;
  /** Told whenever its position changes (1 = next), and again every `updateMs` while it waits. */
  position(position: number): void;
}

export class WaitQueue {
  readonly #waiters: Waiter[] = [];
  #updates: NodeJS.Timeout | undefined;

  constructor(
    private readonly maxLength: number,
    private readonly pick: (request: RouteRequest) => LiveNode | undefined,
    /** A waiting client hears its position (and the estimate that goes with it) at least this often; 0: only on changes. */
    private readonly updateMs = 0,
  ) {}

  get length(): number {
    return this.#waiters.length;
  }

  /** Adds a waiter at the end; refuses with ResourceExhausted when the queue is full. */
  enqueue(waiter: Waiter): void {
    if (this.#waiters.length >= this.maxLength) {
      throw new ConnectError(
        `all capable nodes are busy and the queue is full (${this.maxLength} requests waiting); try again shortly`,
        Code.ResourceExhausted,
      );
    }
    this.#waiters.push(waiter);
    waiter.position(this.#waiters.length);
    this.#scheduleUpdates();
  }

  remove(waiter: Waiter): void {
    const index = this.#waiters.indexOf(waiter);
    if (index < 0) return;
    this.#waiters.splice(index, 1);
    this.#announceFrom(index);
    this.#scheduleUpdates();
  }

  /** Gives free capacity to waiters in arrival order (a later waiter may go first if the earlier one can't use it). */
  drain(): void {
    let firstRemoved = -1;
    for (let i = 0; i < this.#waiters.length; ) {
      const waiter = this.#waiters[i]!;
      const node = this.pick(waiter.request);
      if (!node) {
        i++;
        continue;
      }
      this.#waiters.splice(i, 1);
      if (firstRemoved < 0) firstRemoved = i;
      waiter.claim(node);
    }
    if (firstRemoved >= 0) this.#announceFrom(firstRemoved);
    this.#scheduleUpdates();
  }

  /** One timer for the whole queue, running only while someone waits. */
  #scheduleUpdates(): void {
    if (this.#waiters.length === 0 || this.updateMs <= 0) {
      clearInterval(this.#updates);
      this.#updates = undefined;
    } else {
      this.#updates ??= setInterval(() => this.#announceFrom(0), this.updateMs).unref();
    }
  }

  #announceFrom(index: number): void {
    for (let i = index; i < this.#waiters.length; i++) this.#waiters[i]!.position(i + 1);
  }
}
