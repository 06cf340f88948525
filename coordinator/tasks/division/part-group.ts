// Parts of a divided request running side by side (PartGroup): their events merged into one channel, at most a
// limit at once, all cancelled together.
import { Code, ConnectError } from "@connectrpc/connect";
import { Channel } from "../../../common/channel.ts";
import type { PartRunner } from "../part-runner.ts";
import type { PartEvent, PartResult, PartSpec } from "../part-spec.ts";
import type { DivisionContext } from "./divided-task.ts";

export type GroupEvent =
  | { index: number; kind: "event"; event: PartEvent }
  | { index: number; kind: "result"; result: PartResult }
  | { index: number; kind: "error"; error: ConnectError };

/**
 * Parts running side by side, their events merged into one channel; at most `limit` run at once (the rest wait
 * here, in order, rather than in the network's queue with its time limit). Cancelling the group cancels them all.
 */
export class PartGroup {
  readonly events = new Channel<GroupEvent>();
  readonly #controllers: AbortController[] = [];
  readonly #pending: { index: number; spec: PartSpec }[] = [];
  /** Follows the client's signal until `detach()`. */
  readonly #client = new AbortController();
  #detached = false;
  #running = 0;
  readonly #parts: PartRunner;
  readonly #now: () => number;

  constructor(
    ctx: Pick<DivisionContext, "parts" | "now">,
    signal: AbortSignal,
    private limit = Infinity,
  ) {
    this.#parts = ctx.parts;
    this.#now = ctx.now;
    if (signal.aborted) this.#client.abort(signal.reason);
    else signal.addEventListener("abort", () => this.#detached || this.#client.abort(signal.reason), { once: true });
  }

  /**
   * From now on the parts run to their end whatever the client does (consensus copies still being judged after
   * the client got the majority's answer); `cancelAll` still stops them.
   */
  detach(): void {
    this.#detached = true;
  }

  get detached(): boolean {
    return this.#detached;
  }

  /**
   * Records the part's row (queued) and starts it when the limit allows; returns its index in the group. The part's
   * clock starts when it is handed out (see #launch).
   */
  start(spec: Omit<PartSpec, "signal" | "started">): number {
    const controller = new AbortController();
    const index = this.#controllers.push(controller) - 1;
    const full: PartSpec = {
      ...spec,
      started: this.#now(),
      signal: AbortSignal.any([this.#client.signal, controller.signal]),
    };
    this.#parts.record(full);
    this.#pending.push({ index, spec: full });
    this.#launch();
    return index;
  }

  /** Changes how many parts run at once (subtasks: once the plan's parts and their nodes are known). */
  setLimit(limit: number): void {
    this.limit = Math.max(1, limit);
    this.#launch();
  }

  /** Parts started and not yet settled. */
  get running(): number {
    return this.#running;
  }

  cancelAll(): void {
    for (const { spec } of this.#pending.splice(0))
      this.#parts.abandon(spec, "the task ended before this part started");
    for (const controller of this.#controllers) controller.abort();
  }

  #launch(): void {
    // the client has gone: a part that has not started never will (its row is closed, no node is asked)
    if (this.#client.signal.aborted) {
      for (const { index, spec } of this.#pending.splice(0)) {
        this.#parts.abandon(spec, "the client cancelled the request before this part started");
        this.events.push({
          index,
          kind: "error",
          error: new ConnectError("the client cancelled the request", Code.Canceled),
        });
      }
      return;
    }
    while (this.#running < this.limit && this.#pending.length > 0) {
      const { index, spec } = this.#pending.shift()!;
      this.#running++;
      // the part's clock (deadline, time to first token) starts when it is handed out, not while it waits here
      void this.#pump(index, { ...spec, started: this.#now() });
    }
  }

  async #pump(index: number, spec: PartSpec): Promise<void> {
    const run = this.#parts.run(spec);
    try {
      for (;;) {
        const next = await run.next();
        if (next.done) {
          this.#settle({ index, kind: "result", result: next.value });
          return;
        }
        this.events.push({ index, kind: "event", event: next.value });
      }
    } catch (err) {
      this.#settle({ index, kind: "error", error: ConnectError.from(err) });
    }
  }

  #settle(item: GroupEvent): void {
    this.#running--;
    this.events.push(item);
    this.#launch();
  }
}
