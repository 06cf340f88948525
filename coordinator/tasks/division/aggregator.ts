// The response aggregator of subtasks: parts finish in any order, the user reads one stream in plan order.
// The part at the head streams live; the others are buffered and released, in order, once the head is done.

export class OrderedRelease {
  readonly #buffers: string[][];
  readonly #complete: boolean[];
  #head = 0;
  #opened = -1;

  /** `heading(i)` introduces part i in the combined answer; none for a request that was not split. */
  constructor(
    count: number,
    private readonly heading?: (index: number) => string,
  ) {
    this.#buffers = Array.from({ length: count }, () => []);
    this.#complete = new Array<boolean>(count).fill(false);
  }

  /** The part that streams live now. */
  get head(): number {
    return this.#head;
  }

  get finished(): boolean {
    return this.#head >= this.#buffers.length;
  }

  /** What to send at the start (the first part's heading). */
  start(): string[] {
    return this.#open();
  }

  /** A piece of part `index`: sent at once when it is the head, else kept. */
  token(index: number, text: string): string[] {
    if (index === this.#head) return [text];
    this.#buffers[index]!.push(text);
    return [];
  }

  /** Part `index` is complete: when it was the head, the following parts that are ready are released. */
  complete(index: number): string[] {
    this.#complete[index] = true;
    const out: string[] = [];
    while (this.#head < this.#buffers.length && this.#complete[this.#head]) {
      this.#head++;
      if (this.#head < this.#buffers.length) out.push(...this.#open());
    }
    return out;
  }

  /** The new head's heading and what it produced while it waited. */
  #open(): string[] {
    if (this.#opened >= this.#head || this.#head >= this.#buffers.length) return [];
    this.#opened = this.#head;
    const out: string[] = [];
    if (this.heading) out.push(`${this.#head > 0 ? "\n\n" : ""}${this.heading(this.#head)}\n\n`);
    const buffered = this.#buffers[this.#head]!;
    this.#buffers[this.#head] = [];
    out.push(...buffered);
    return out;
  }
}
