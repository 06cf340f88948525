// Which run of each peer coordinator is the live one. Every run has an incarnation (a random id made at start): a
// new one under a known name is a restart, and an earlier one (a second coordinator under the name, or a late word
// of a run that ended) is not listened to.

/** What a view under an incarnation is: the run heard so far, the first heard, its successor, or an ended run. */
export type Incarnation = "current" | "first" | "restarted" | "retired";

/** Ended runs remembered per home. */
const RETIRED_KEPT = 8;

export class Incarnations {
  readonly #current = new Map<string, string>();
  /** Each home's ended runs, newest last. */
  readonly #retired = new Map<string, string[]>();

  /** What a view of `home` under `incarnation` is; a first or restarted one becomes the home's current run. */
  heard(home: string, incarnation: string): Incarnation {
    if (incarnation === "") return "current"; // a coordinator that predates incarnations: only silence or leaving tell
    const known = this.#current.get(home);
    if (known === incarnation) return "current";
    if (this.#retired.get(home)?.includes(incarnation)) return "retired";
    this.#current.set(home, incarnation);
    if (known === undefined) return "first";
    this.#retire(home, known);
    return "restarted";
  }

  /** Whether `incarnation` is the home's run heard so far (asked without hearing it). */
  isCurrent(home: string, incarnation: string): boolean {
    return incarnation !== "" && this.#current.get(home) === incarnation;
  }

  /** The home says its run `incarnation` is leaving: false when that run had already been replaced (ignore it). */
  left(home: string, incarnation: string): boolean {
    if (this.#retired.get(home)?.includes(incarnation)) return false;
    // that run is over: whatever it says late is ignored, and the next one is a newcomer
    this.#retire(home, incarnation);
    this.#current.delete(home);
    return true;
  }

  #retire(home: string, incarnation: string): void {
    if (incarnation === "") return;
    const retired = this.#retired.get(home) ?? [];
    if (!retired.includes(incarnation)) retired.push(incarnation);
    this.#retired.set(home, retired.slice(-RETIRED_KEPT));
  }
}
