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
  /** A full view in parts being heard: the next part due, and the nodes listed since its first. */
  collecting: { next: number; parts: number; listed: Set<string> } | undefined;
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

  /**
   * Whether the view numbered `sequence`, listing `nodeCount` nodes, comes next after every view of the run heard in
   * order, with as many nodes held as the home counts (and no full view in parts half heard): a peer in step.
   */
  inStep(sequence: bigint, nodeCount: number): boolean {
    return (
      this.synced &&
      this.collecting === undefined &&
      this.sequence !== 0n &&
      sequence === this.sequence + 1n &&
      nodeCount === this.listed.size
    );
  }

  /**
   * Before a view is applied: where it stands in a full view sent in parts. Returns the set that collects the nodes
   * listed since the first part (the view's and any delta's), or undefined outside one. A part out of its turn ends
   * the collection: its nodes are applied, none are dropped, and the gap in the numbers asks for the whole view again.
   */
  part(view: { parts: number; part: number; full: boolean }): Set<string> | undefined {
    if (view.full) this.collecting = undefined;
    else if (view.parts > 1 && view.part === 1) this.collecting = { next: 2, parts: view.parts, listed: new Set() };
    else if (view.parts > 1) {
      if (this.collecting?.next === view.part && this.collecting.parts === view.parts) this.collecting.next++;
      else this.collecting = undefined;
    }
    return this.collecting?.listed;
  }

  /** After a view was applied: every node of a full view in parts, when it was its last; the collection ends. */
  completed(view: { parts: number; part: number }): Set<string> | undefined {
    const collecting = this.collecting;
    if (!collecting || view.parts <= 1 || view.part !== view.parts || collecting.next !== view.parts + 1) return;
    this.collecting = undefined;
    return collecting.listed;
  }

  /** After the view was applied: the home's count of its nodes against the listed ones held here. */
  counted(nodeCount: number): void {
    // every part of a full view counts all of the home's nodes: they are all held here only after the last
    if (this.collecting) return;
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
