// The answer-comparison rule shared by consensus and spot checks: normalised word tokens, a bounded
// Levenshtein distance, a similarity threshold, and the majority among several answers.
import { createHash } from "node:crypto";

/**
 * Normalised word tokens of an answer: Unicode NFKC (full-width and compatibility forms fold together),
 * lowercase, split on any run of whitespace (so spacing and line breaks never count), and punctuation
 * stripped at the edges of each word ("world!" and "world" are the same word; "3.14" keeps its dot).
 * Empty words (a lone "-") disappear.
 */
export function normalizedWords(text: string): string[] {
  const words: string[] = [];
  for (const raw of text.normalize("NFKC").toLowerCase().split(/\s+/u)) {
    const word = raw.replace(/^[\p{P}\p{S}]+|[\p{P}\p{S}]+$/gu, "");
    if (word) words.push(word);
  }
  return words;
}

/**
 * The Levenshtein distance between two word sequences (insert, delete, substitute a word: cost 1), or
 * `max + 1` when it exceeds `max`. Landau–Vishkin: for each distance d it keeps, per diagonal, the furthest
 * row reachable with d edits and slides along equal words, so the cost is about O(max² + length × diagonals
 * that slide): answers that agree (one long shared run, a few edits) cost little whatever their length, and
 * answers that do not are given up after `max` rounds.
 */
export function boundedWordDistance(a: readonly string[], b: readonly string[], max: number): number {
  const n = a.length;
  const m = b.length;
  if (Math.abs(n - m) > max) return max + 1;
  const none = -1;
  const offset = max + 1;
  // furthest row per diagonal (k = column − row, stored at k + offset), for d − 1 and for d
  let previous = new Int32Array(2 * max + 3).fill(none);
  let current = new Int32Array(2 * max + 3).fill(none);
  for (let d = 0; d <= max; d++) {
    for (let k = -d; k <= d; k++) {
      if (k < -n || k > m) continue; // the diagonal misses the table
      let i: number;
      if (d === 0) i = 0;
      else {
        const substitute = previous[k + offset]! === none ? none : previous[k + offset]! + 1;
        const insert = previous[k - 1 + offset]!; // one more word of b: same row, next diagonal
        const remove = previous[k + 1 + offset]! === none ? none : previous[k + 1 + offset]! + 1;
        i = Math.max(substitute, insert, remove);
        if (i === none) {
          current[k + offset] = none;
          continue;
        }
        i = Math.min(i, n, m - k);
      }
      while (i < n && i + k < m && a[i] === b[i + k]) i++;
      current[k + offset] = i;
      if (k === m - n && i === n) return d;
    }
    [previous, current] = [current, previous];
  }
  return max + 1;
}

/**
 * 1 − (word edit distance ÷ the longer answer's word count): 1 for equal answers (two empty answers are
 * equal), 0 for answers with nothing in common. Only whether it reaches `threshold` matters, so the
 * distance is computed within the budget the threshold allows and anything over it reports 0.
 */
export function similarity(a: readonly string[], b: readonly string[], threshold: number): number {
  const longest = Math.max(a.length, b.length);
  if (longest === 0) return 1;
  // the epsilon keeps 0.1 × 10 (0.9999…) from flooring to 0 edits
  const budget = Math.floor((1 - threshold) * longest + 1e-9);
  const distance = boundedWordDistance(a, b, budget);
  return distance > budget ? 0 : 1 - distance / longest;
}

/** Whether two answers agree under the rule. */
export function sameAnswer(a: string, b: string, threshold: number): boolean {
  return similarity(normalizedWords(a), normalizedWords(b), threshold) >= threshold;
}

export interface MajorityVerdict {
  /** The answer returned: the one that agrees with the most others (the earliest on ties). */
  representative: number;
  /** Indices that agree with the representative (itself included), in input order. */
  agreeing: number[];
  /** Indices that do not. */
  dissenting: number[];
  /** Whether the agreeing answers are a majority of the `requested` nodes (more than half). */
  verified: boolean;
  /** Each answer's similarity to the representative. */
  similarities: number[];
}

/**
 * Finds the majority among answers to the same request. `requested` is how many nodes were asked: the
 * agreeing group must hold more than half of them, so 2 of 3 verifies, and so does 2 of 3 when the third
 * node failed, but 1 of 2 never does.
 */
export function findMajority(answers: readonly string[], requested: number, threshold: number): MajorityVerdict {
  const words = answers.map(normalizedWords);
  const n = words.length;
  const agrees: boolean[][] = words.map(() => new Array<boolean>(n).fill(false));
  for (let i = 0; i < n; i++) {
    agrees[i]![i] = true;
    for (let j = i + 1; j < n; j++) {
      const same = similarity(words[i]!, words[j]!, threshold) >= threshold;
      agrees[i]![j] = agrees[j]![i] = same;
    }
  }
  let representative = 0;
  let best = -1;
  for (let i = 0; i < n; i++) {
    const count = agrees[i]!.filter(Boolean).length;
    if (count > best) {
      best = count;
      representative = i;
    }
  }
  const agreeing: number[] = [];
  const dissenting: number[] = [];
  for (let i = 0; i < n; i++) (agrees[representative]![i] ? agreeing : dissenting).push(i);
  return {
    representative,
    agreeing,
    dissenting,
    verified: n > 0 && agreeing.length * 2 > requested,
    similarities: words.map((w) => similarity(words[representative]!, w, threshold)),
  };
}

/** SHA-256 of an answer's exact text, hex: the evidence kept for a mismatch (never the text itself). */
export function answerHash(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}
