// Context mode's token budgets: how much of a node's window a chunk, a note and the prompt around them may take,
// how a note is held to its size, and how notes are packed so that every combining round shrinks. Pure functions.
import type { TokenCounter } from "./chunking.ts";

/** Tokens kept free beyond prompt and answer: rounding, and a chat template a little longer than allowed for. */
export const SAFETY_TOKENS = 16;
/** Chat-template tokens per message (role markers, separators: 3 to 5 in Llama, ChatML, Mistral), and the BOS. */
export const TEMPLATE_TOKENS_PER_MESSAGE = 8;
/** A chunk smaller than this is no reading: the nodes' windows are too small for context mode. */
export const MIN_CHUNK_TOKENS = 32;
/** A note is asked for with max_tokens = noteTokens, and kept at up to twice that (a note's words may count more). */
const NOTE_CAP_FACTOR = 2;

/** The configured ceilings (CONTEXT_CHUNK_TOKENS, CONTEXT_NOTE_TOKENS, CONTEXT_OVERLAP_TOKENS). */
export interface BudgetCeilings {
  contextChunkTokens: number;
  contextNoteTokens: number;
  contextOverlapTokens: number;
}

export interface ContextBudget {
  /** The smallest context window among the nodes that may take the parts; undefined when none is known. */
  window: number | undefined;
  /** The largest prompt around a chunk or notes: instructions, the request, the template (all counted). */
  overheadTokens: number;
  /** The most a chunk (map) or a batch of notes (combine, reduce) may take: B. */
  chunkTokens: number;
  /** max_tokens of a note: N ≤ B / 8. */
  noteTokens: number;
  /** What a note may take in a later prompt, header included: at most B / 2, so every batch holds two notes. */
  noteCapTokens: number;
  /** Tokens each chunk repeats from the previous one: at most B / 8. */
  overlapTokens: number;
}

/**
 * The budget for nodes whose smallest window is `window` tokens, with `overheadTokens` of prompt around the text
 * read and `headerTokens` for the label in front of each note. With W the window, O the overhead, S SAFETY_TOKENS:
 * room A = W − O − S;  N = min(CONTEXT_NOTE_TOKENS, ⌊A / 9⌋);  B = min(CONTEXT_CHUNK_TOKENS, A − N);  N = min(N, ⌊B /
 * 8⌋)
 * so prompt + note ≤ O + B + N ≤ W − S: every prompt fits with room for its whole answer. An unknown window
 * leaves the ceilings. Undefined when the window leaves no room for a chunk of MIN_CHUNK_TOKENS.
 */
export function contextBudgetFor(
  window: number | undefined,
  overheadTokens: number,
  headerTokens: number,
  ceilings: BudgetCeilings,
): ContextBudget | undefined {
  const room = window === undefined ? Infinity : window - overheadTokens - SAFETY_TOKENS;
  let noteTokens = Math.min(ceilings.contextNoteTokens, Math.floor(room / 9));
  const chunkTokens = Math.min(ceilings.contextChunkTokens, room - noteTokens);
  noteTokens = Math.min(noteTokens, Math.floor(chunkTokens / 8));
  const noteCapTokens = Math.min(NOTE_CAP_FACTOR * noteTokens, Math.floor(chunkTokens / 2) - Math.ceil(headerTokens));
  if (chunkTokens < MIN_CHUNK_TOKENS || noteTokens < 1 || noteCapTokens < 1) return undefined;
  return {
    window,
    overheadTokens,
    chunkTokens,
    noteTokens,
    noteCapTokens,
    overlapTokens: Math.max(0, Math.min(ceilings.contextOverlapTokens, Math.floor(chunkTokens / 8))),
  };
}

/**
 * `text` cut to at most `capTokens` by `count`, at a word boundary where there is one, with "…" to say so. A node
 * generates a note of at most N tokens of its own, but its words may count for more at the splitting rates.
 */
export function cutToTokens(text: string, capTokens: number, count: TokenCounter): string {
  if (count(text) <= capTokens) return text;
  const mark = "…";
  let low = 0;
  let high = text.length;
  // the longest prefix that fits with the mark: counts grow with length
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (count(text.slice(0, mid) + mark) <= capTokens) low = mid;
    else high = mid - 1;
  }
  const prefix = text.slice(0, low);
  const space = prefix.search(/\s\S*$/);
  const cut = space > low / 2 ? prefix.slice(0, space) : prefix;
  return cut.trimEnd() + (cut.length > 0 || count(mark) <= capTokens ? mark : "");
}

/**
 * Notes packed in order into batches of total weight ≤ `limit` (next fit): [from, to) index ranges. Every weight
 * must be ≤ limit / 2, which the note cap guarantees. A batch closes only when the next note does not fit, and two
 * notes of ≤ limit / 2 always fit together, so every batch but the last holds at least two notes: n ≥ 2 notes make
 * at most ⌈n / 2⌉ < n batches. Every combining round shrinks; ⌈log2 n⌉ rounds at most.
 */
export function packNotes(weights: readonly number[], limit: number): [number, number][] {
  const batches: [number, number][] = [];
  let from = 0;
  let total = 0;
  for (let i = 0; i < weights.length; i++) {
    const weight = weights[i]!;
    if (weight > limit / 2) throw new RangeError(`note ${i + 1} weighs ${weight}, over half the limit of ${limit}`);
    if (i > from && total + weight > limit) {
      batches.push([from, i]);
      from = i;
      total = 0;
    }
    total += weight;
  }
  if (from < weights.length) batches.push([from, weights.length]);
  return batches;
}
