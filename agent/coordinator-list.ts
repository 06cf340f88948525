// COORDINATOR_URL as a list: the coordinators of a cluster, in order. The link uses one; when its session fails it
// moves to the next, so an agent whose coordinator died is serving again through another within seconds.

/** The coordinators of COORDINATOR_URL, in order (one or more, comma-separated). */
export function coordinatorUrls(value: string): string[] {
  return value
    .split(",")
    .map((url) => url.trim())
    .filter((url) => url !== "");
}

export class CoordinatorList {
  readonly urls: string[];
  #current = 0;
  /** Where the current round through the list began: a round that registered nowhere grows the backoff. */
  #roundStart = 0;

  constructor(value: string) {
    this.urls = coordinatorUrls(value);
    if (this.urls.length === 0) throw new TypeError("COORDINATOR_URL names no coordinator");
  }

  /** The coordinator to use now. */
  get current(): string {
    return this.urls[this.#current]!;
  }

  get index(): number {
    return this.#current;
  }

  /**
   * Moves to the next coordinator after a session ended. "round": wait the backoff (the session had registered, or
   * every coordinator of the list failed once more); "next": try the next one at once.
   */
  advance(registered: boolean): "round" | "next" {
    this.#current = (this.#current + 1) % this.urls.length;
    if (registered) {
      this.#roundStart = this.#current;
      return "round";
    }
    return this.#current === this.#roundStart ? "round" : "next";
  }
}
