// Remembers classifications by a hash of the conversation, for a while and up to a bound (least recently used goes).
import { hash } from "node:crypto";
import type { Classification } from "./classifier.ts";

/**
 * SHA-256 of the conversation's roles and contents, normalised so that what a person would call the same prompt
 * hits: Unicode NFC, runs of whitespace as one space, ends trimmed, roles lowercased. Case is kept: it can matter.
 */
export function conversationKey(messages: readonly { role: string; content: string }[]): string {
  let text = "";
  for (const { role, content } of messages) {
    // length-prefixed fields: no two different conversations concatenate to the same bytes
    const r = role.trim().toLowerCase();
    const c = content.normalize("NFC").replace(/\s+/g, " ").trim();
    text += `${r.length}:${r};${c.length}:${c};`;
  }
  return hash("sha256", text, "hex");
}

export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  size: number;
}

export class ClassificationCache {
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used first.
  readonly #entries = new Map<string, { value: Classification; expiresAt: number }>();
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.ttlMs > 0 && this.maxEntries > 0;
  }

  get(key: string): Classification | undefined {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt > this.now()) {
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      this.#hits++;
      return entry.value;
    }
    if (entry) this.#entries.delete(key);
    this.#misses++;
    return undefined;
  }

  set(key: string, value: Classification): void {
    if (!this.enabled) return;
    this.#entries.delete(key);
    this.#entries.set(key, { value, expiresAt: this.now() + this.ttlMs });
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.maxEntries) break;
      this.#entries.delete(oldest);
      this.#evictions++;
    }
  }

  stats(): CacheStats {
    return { hits: this.#hits, misses: this.#misses, evictions: this.#evictions, size: this.#entries.size };
  }
}
