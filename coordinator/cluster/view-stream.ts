// What a peer knows of one home's numbered views (view-receiver.ts): the last number heard, whether it holds every
// view since a full one, and which nodes the home listed; from that, when to ask the home for its full view.

/** Why a peer asks a home for its full view. */
export type WantReason = "first" | "gap" | "count" | "lost";

export class ViewStream {
  /** The last view's number: 0 before the first, and from a home that does not number its views. */
  sequence = 0n;
  /** Every view since a full one was heard (or since the home's first), and the counts agreed. */
  synced = false;
  /** The home's nodes as its views listed them, whichever registration won here. */
  readonly listed = new Set<string>();
  #reason: WantReason | undefined;
  #askedAt: number | undefined;
  /** Nodes the home lists that were found disconnected here at the last beat. */
  #lost = new Set<string>();

  /** A view numbered `sequence` arrived: false when a delta or beat was heard already (it is ignored). */
  heard(sequence: bigint, full: boolean): boolean {
    if (sequence === 0n) {
      // a home that predates sequences sends its full view every CLUSTER_VIEW_MS: nothing to ask
      this.synced = true;
      return true;
    }
    // a full view is taken whatever its number: a run that reused its incarnation starts again at 1
    if (sequence <= this.sequence && !full) return false;
    const next = sequence === this.sequence + 1n;
    const first = this.sequence === 0n;
    this.sequence = sequence;
    if (full || (first && next)) this.#synced();
    else if (!next) this.#outOfStep(first ? "first" : "gap");
    return true;
  }

  /** After the view was applied: the home's count of its nodes against the listed ones held here. */
  counted(nodeCount: number): void {
    if (this.sequence !== 0n && this.synced && nodeCount !== this.listed.size) this.#outOfStep("count");
  }

  /**
   * At a beat: the listed nodes found disconnected here (a refused assign). One still so at the next beat was lost
   * here while its home keeps it (the home did not answer in time): a full view makes it routable again.
   */
  disconnected(ids: Set<string>): void {
    const again = [...ids].some((id) => this.#lost.has(id));
    this.#lost = ids;
    if (again) this.#outOfStep("lost");
  }

  /** Why to ask the home for its full view now; undefined when in step, or when an ask went out within `againMs`. */
  want(now: number, againMs: number): WantReason | undefined {
    if (this.synced || this.#reason === undefined) return undefined;
    if (this.#askedAt !== undefined && now - this.#askedAt < againMs) return undefined;
    this.#askedAt = now;
    return this.#reason;
  }

  #synced(): void {
    this.synced = true;
    this.#reason = undefined;
    this.#askedAt = undefined;
  }

  #outOfStep(reason: WantReason): void {
    this.synced = false;
    this.#reason ??= reason;
  }
}
