// The receiving side's check that each sealed message of one task attempt arrives once and, for chunks, in order.
import type { AadKind } from "./envelope.ts";

export type ReplayVerdict = { ok: true } | { ok: false; reason: string };

const ACCEPTED: ReplayVerdict = { ok: true };
const reject = (reason: string): ReplayVerdict => ({ ok: false, reason });

/**
 * One per task attempt (a failover to another node starts a new guard: its chunks count from 0 again).
 * The AAD makes a sealed message valid only for its own (kind, task, sequence); this guard makes each such
 * slot usable once, so a recorded chunk can't be played again. Feed it only messages that opened: a forged
 * message must not move it. A rejected message leaves it unchanged.
 */
export class ReplayGuard {
  #nextChunk = 0;
  #resultSeen = false;
  #seen = new Set<string>();

  /** The sequence the next chunk must carry; also the chunk count (TaskResult.chunk_count) a result must claim. */
  get nextChunk(): number {
    return this.#nextChunk;
  }

  /**
   * Chunks: only the next expected sequence. Result: once, and its sequence (the chunk count it claims) must
   * equal the chunks accepted, so a dropped trailing chunk is caught too; no chunk after it. Other kinds:
   * each (kind, sequence) once.
   */
  accept(kind: AadKind, sequence: number): ReplayVerdict {
    if (kind === "chunk") {
      if (this.#resultSeen) return reject(`chunk ${sequence} arrived after the result`);
      if (sequence < this.#nextChunk) return reject(`duplicate chunk ${sequence} (expected ${this.#nextChunk})`);
      if (sequence > this.#nextChunk) return reject(`gap: chunk ${sequence} arrived, expected ${this.#nextChunk}`);
      this.#nextChunk += 1;
      return ACCEPTED;
    }
    if (kind === "result") {
      if (this.#resultSeen) return reject("duplicate result");
      if (sequence !== this.#nextChunk) {
        return reject(`result claims ${sequence} chunks but ${this.#nextChunk} arrived`);
      }
      this.#resultSeen = true;
      return ACCEPTED;
    }
    const slot = `${kind}|${sequence}`;
    if (this.#seen.has(slot)) return reject(`duplicate ${kind} ${sequence}`);
    this.#seen.add(slot);
    return ACCEPTED;
  }
}
