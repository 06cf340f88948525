// An unbounded async queue with one consumer: producers push without waiting, the consumer iterates.
// Node streams' outboxes and tasks' event streams use it; close(error) ends the iteration with that error.
// A producer can see how many items wait and be told when the consumer has taken them all (a backed-up outbox).

export class Channel<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #head = 0;
  #waiter: ((result: IteratorResult<T>) => void) | undefined;
  #failer: ((error: unknown) => void) | undefined;
  #closed = false;
  #error: unknown;
  /** Told once, when the queue next empties or the channel closes. */
  readonly #drainListeners = new Set<() => void>();

  get closed(): boolean {
    return this.#closed;
  }

  /** Items pushed and not yet taken by the consumer (0 while it keeps up: a push then goes straight to it). */
  get queued(): number {
    return this.#items.length - this.#head;
  }

  /**
   * Calls `listener` once, when the consumer takes the last queued item or the channel closes (never at once,
   * even when nothing is queued now); returns a function that forgets it.
   */
  onDrained(listener: () => void): () => void {
    this.#drainListeners.add(listener);
    return () => void this.#drainListeners.delete(listener);
  }

  /** Adds an item; returns false (and drops it) when the channel is closed. */
  push(item: T): boolean {
    if (this.#closed) return false;
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = this.#failer = undefined;
      waiter({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
    return true;
  }

  /** Ends the channel: the consumer drains what is queued, then ends (or throws `error` when given). */
  close(error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    if (this.#waiter) this.#settleEnd();
    this.#notifyDrained();
  }

  /** The first queued item, without taking it; undefined when none is queued now. */
  peek(): T | undefined {
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined;
  }

  /** Takes the first queued item at once when there is one (what `next()` would resolve with), else undefined. */
  take(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const value = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined as T; // let the item be collected
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
      this.#notifyDrained();
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return value;
  }

  /** The next item, or done when closed and drained (throws the close error, if any). */
  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#items.length) return Promise.resolve({ value: this.take()!, done: false });
    if (this.#closed) {
      return this.#error === undefined
        ? Promise.resolve({ value: undefined, done: true })
        : Promise.reject(this.#error);
    }
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      this.#failer = reject;
    });
  }

  #notifyDrained(): void {
    if (this.#drainListeners.size === 0) return;
    // a listener may push (and register again): it lands in the next round, not this one
    const listeners = [...this.#drainListeners];
    this.#drainListeners.clear();
    for (const listener of listeners) listener();
  }

  #settleEnd(): void {
    const waiter = this.#waiter!;
    const failer = this.#failer!;
    this.#waiter = this.#failer = undefined;
    if (this.#error === undefined) waiter({ value: undefined, done: true });
    else failer(this.#error);
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.next(),
      return: async () => {
        this.close();
        return { value: undefined, done: true };
      },
      // connect-es aborts the iterables it consumes through throw(); the channel just ends
      throw: async () => {
        this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
