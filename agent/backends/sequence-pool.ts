// Context sequences of the embedded engine, lent to one request at a time; requests beyond them wait in FIFO order.
import type { LlamaContextSequence } from "node-llama-cpp";

/** Context sequences lent to one request at a time; requests beyond them wait in FIFO order. */
export class SequencePool {
  private readonly waiting: { grant: (sequence: LlamaContextSequence | undefined) => void }[] = [];
  private closed = false;

  constructor(private readonly free: LlamaContextSequence[]) {}

  /** Resolves with a lease, or undefined when `signal` aborts (or the pool closes) first. */
  async acquire(signal: AbortSignal): Promise<{ sequence: LlamaContextSequence; release: () => void } | undefined> {
    if (signal.aborted || this.closed) return undefined;
    const sequence =
      this.free.pop() ??
      (await new Promise<LlamaContextSequence | undefined>((resolve) => {
        const waiter = {
          grant: (granted: LlamaContextSequence | undefined) => {
            signal.removeEventListener("abort", onAbort);
            resolve(granted);
          },
        };
        const onAbort = () => {
          this.waiting.splice(this.waiting.indexOf(waiter), 1);
          waiter.grant(undefined);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        this.waiting.push(waiter);
      }));
    if (!sequence) return undefined;
    let released = false;
    return {
      sequence,
      release: () => {
        if (released) return;
        released = true;
        const next = this.waiting.shift();
        if (next) next.grant(sequence);
        else this.free.push(sequence);
      },
    };
  }

  close(): void {
    this.closed = true;
    for (const waiter of this.waiting.splice(0)) waiter.grant(undefined);
  }
}
