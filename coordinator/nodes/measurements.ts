// What the coordinator measured of one node's model: speed samples, the context it proved or refused, and what
// canaries against peers showed. Kept on the live node and in the node's row (nodes.measured), so reconnecting
// does not wipe a contradiction.
import { SPEED_WINDOW, type IdentityRecord } from "./capability.ts";

export interface MeasuredSnapshot {
  /** The model the measurements are of (measurementKey): another model starts afresh. */
  model: string;
  /** tokens/s, oldest first, at most SPEED_WINDOW. */
  speed: number[];
  provenContext: number;
  refusedContext?: number;
  identity?: IdentityRecord;
}

/** Measurements of one model on one node: its name, quantization and file fingerprint. */
export function measurementKey(model: { modelName: string; quantization: string; modelSha256?: string }): string {
  return JSON.stringify([model.modelName, model.quantization, model.modelSha256 ?? ""]);
}

export class NodeMeasurements {
  #speed: number[] = [];
  #provenContext = 0;
  #refusedContext: number | undefined;
  #identity: IdentityRecord | undefined;
  /**
   * Something worth writing at once changed (a refusal, a canary's verdict); speed samples wait for the session's end.
   */
  #unsaved = false;

  /** Restores a stored snapshot when it is of the same model; anything else is ignored. */
  constructor(
    readonly model: string,
    stored?: unknown,
  ) {
    const snapshot = parseSnapshot(stored);
    if (!snapshot || snapshot.model !== model) return;
    this.#speed = snapshot.speed.slice(-SPEED_WINDOW);
    this.#provenContext = snapshot.provenContext;
    this.#refusedContext = snapshot.refusedContext;
    this.#identity = snapshot.identity;
  }

  get speedSamples(): readonly number[] {
    return this.#speed;
  }
  get provenContext(): number {
    return this.#provenContext;
  }
  get refusedContext(): number | undefined {
    return this.#refusedContext;
  }
  get identity(): IdentityRecord | undefined {
    return this.#identity;
  }

  /**
   * A completed answer: its speed sample (if it is one) and the tokens it held (prompt and answer). Whether it
   * changed anything: an answer taken whole gives no sample, and a prompt no larger than one seen proves nothing new
   * (then nothing that reads the measurements, the tier above all, needs to look again).
   */
  answered(speed: number | undefined, contextTokens: number): boolean {
    let changed = false;
    if (speed !== undefined && Number.isFinite(speed) && speed > 0) {
      this.#speed.push(speed);
      if (this.#speed.length > SPEED_WINDOW) this.#speed.shift();
      changed = true;
    }
    if (contextTokens > this.#provenContext) {
      this.#provenContext = contextTokens;
      changed = true;
    }
    return changed;
  }

  /** The node refused a prompt of about `tokens` as too long for its context window. */
  refused(tokens: number): void {
    if (this.#refusedContext !== undefined && this.#refusedContext <= tokens) return;
    this.#refusedContext = tokens;
    this.#unsaved = true;
  }

  compared(identity: IdentityRecord): void {
    this.#identity = identity;
    this.#unsaved = true;
  }

  /** Whether something changed that should be written now; clears the mark. */
  takeUnsaved(): boolean {
    const unsaved = this.#unsaved;
    this.#unsaved = false;
    return unsaved;
  }

  snapshot(): MeasuredSnapshot {
    return {
      model: this.model,
      speed: this.#speed.map((s) => Math.round(s * 100) / 100),
      provenContext: this.#provenContext,
      ...(this.#refusedContext !== undefined ? { refusedContext: this.#refusedContext } : {}),
      ...(this.#identity ? { identity: { ...this.#identity } } : {}),
    };
  }
}

/** A stored snapshot, or undefined when the value is not one (a row from before the column, hand-edited JSON). */
function parseSnapshot(value: unknown): MeasuredSnapshot | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.model !== "string" || !Array.isArray(v.speed) || typeof v.provenContext !== "number") return undefined;
  const speed = v.speed.filter((s): s is number => typeof s === "number" && Number.isFinite(s) && s > 0);
  const identity = v.identity as Record<string, unknown> | undefined;
  return {
    model: v.model,
    speed,
    provenContext: v.provenContext,
    ...(typeof v.refusedContext === "number" ? { refusedContext: v.refusedContext } : {}),
    ...(identity &&
    (identity.verdict === "verified" || identity.verdict === "contradicted") &&
    typeof identity.peer === "string" &&
    typeof identity.at === "number"
      ? { identity: { verdict: identity.verdict, peer: identity.peer, at: identity.at } }
      : {}),
  };
}
