// Token counts (from a node's measured tokenizer rates, or estimated) and the split of a long document into
// overlapping chunks of a token budget (context mode).
import { ESTIMATED_RATES, type TokenizerRates } from "../../../common/tokenizer-rates.ts";

/**
 * Tokens a text takes at `rates` (by default the estimate without a tokenizer, ESTIMATED_RATES: one per 3.5
 * ASCII characters and one per other character).
 */
export function estimateTokens(text: string, rates: TokenizerRates = ESTIMATED_RATES): number {
  return Math.ceil(tokenWeight(text, rates));
}

/** The count before rounding: chunks add up their words' weights, so rounding each word would overcount. */
export function tokenWeight(text: string, rates: TokenizerRates = ESTIMATED_RATES): number {
  let ascii = 0;
  let other = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) ascii++;
    else if (code < 0xdc00 || code > 0xdfff) other++; // a surrogate pair counts once
  }
  return ascii / rates.asciiCharsPerToken + other / rates.otherCharsPerToken;
}

/** Measured rates are averages over samples: a document may tokenize a tenth worse than they say. */
const MEASURED_RATE_MARGIN = 0.9;

/**
 * The rates to split a document for `nodes` with: the fewest characters per token among them (a chunk must fit
 * whichever node takes it), with a 10 % margin on measured rates; a node without a tokenizer counts as the
 * estimate. No nodes: the estimate.
 */
export function ratesFor(nodes: readonly { tokenizerRates?: TokenizerRates }[]): TokenizerRates {
  if (nodes.length === 0) return ESTIMATED_RATES;
  const each = nodes.map((node) =>
    node.tokenizerRates
      ? {
          asciiCharsPerToken: node.tokenizerRates.asciiCharsPerToken * MEASURED_RATE_MARGIN,
          otherCharsPerToken: node.tokenizerRates.otherCharsPerToken * MEASURED_RATE_MARGIN,
        }
      : ESTIMATED_RATES,
  );
  return {
    asciiCharsPerToken: Math.min(...each.map((r) => r.asciiCharsPerToken)),
    otherCharsPerToken: Math.min(...each.map((r) => r.otherCharsPerToken)),
  };
}

/** Tokens of a piece of text (may be fractional: an estimate's share of a word). */
export type TokenCounter = (text: string) => number;

export interface Chunk {
  text: string;
  /** Offsets into the document, [start, end). */
  start: number;
  end: number;
  tokens: number;
}

/**
 * Splits `document` into chunks of at most `chunkTokens` (by `count`), each starting about `overlapTokens`
 * before the previous one ended so that a sentence cut at a boundary is whole in one of them. Chunks end
 * after whitespace, at a paragraph or sentence end when one lies in the chunk's last quarter; a word longer
 * than a chunk is cut where it must be. A document within the budget is one chunk.
 */
export function splitByTokens(
  document: string,
  chunkTokens: number,
  overlapTokens: number,
  count: TokenCounter = tokenWeight,
): Chunk[] {
  if (chunkTokens < 1) throw new RangeError("chunkTokens must be at least 1");
  const overlap = Math.min(Math.max(0, overlapTokens), Math.floor(chunkTokens / 2));
  const pieces = piecesOf(document, chunkTokens, count);
  if (pieces.length === 0) return [];
  const chunks: Chunk[] = [];
  let first = 0;
  while (first < pieces.length) {
    let tokens = 0;
    let last = first;
    while (last < pieces.length && tokens + pieces[last]!.tokens <= chunkTokens) tokens += pieces[last++]!.tokens;
    if (last === first) tokens += pieces[last++]!.tokens; // cannot happen (pieces fit a chunk), but never loop
    const end = last < pieces.length ? preferredEnd(pieces, first, last, chunkTokens) : last;
    const start = pieces[first]!.start;
    const stop = pieces[end - 1]!.end;
    chunks.push({
      text: document.slice(start, stop),
      start,
      end: stop,
      tokens: Math.ceil(sumTokens(pieces, first, end)),
    });
    if (end >= pieces.length) break;
    // step back over about `overlap` tokens, but always move forward
    let next = end;
    let back = 0;
    while (next - 1 > first && back + pieces[next - 1]!.tokens <= overlap) back += pieces[--next]!.tokens;
    first = next;
  }
  return chunks;
}

interface Piece {
  start: number;
  end: number;
  tokens: number;
  /** The piece ends a paragraph (2) or a sentence (1). */
  boundary: 0 | 1 | 2;
}

/** Words with their trailing whitespace; a word over the budget is cut into slices that fit. */
function piecesOf(document: string, chunkTokens: number, count: TokenCounter): Piece[] {
  const pieces: Piece[] = [];
  for (const match of document.matchAll(/\s*\S+\s*/g)) {
    const text = match[0];
    const at = match.index;
    const tokens = count(text);
    if (tokens <= chunkTokens) {
      pieces.push({ start: at, end: at + text.length, tokens, boundary: boundaryOf(text) });
      continue;
    }
    const step = Math.max(1, Math.floor((text.length * chunkTokens) / tokens));
    for (let from = 0; from < text.length; from += step) {
      const slice = text.slice(from, from + step);
      pieces.push({
        start: at + from,
        end: at + from + slice.length,
        tokens: Math.min(chunkTokens, count(slice)),
        boundary: 0,
      });
    }
  }
  return pieces;
}

function boundaryOf(piece: string): 0 | 1 | 2 {
  if (/\n\s*\n\s*$/.test(piece)) return 2;
  if (/[.!?。！？]["')\]]?\s*$/.test(piece)) return 1;
  return 0;
}

/** Where a full chunk should end: the last paragraph end, else sentence end, in its last quarter. */
function preferredEnd(pieces: Piece[], first: number, last: number, chunkTokens: number): number {
  for (const wanted of [2, 1] as const) {
    let tokens = sumTokens(pieces, first, last);
    for (let end = last; end > first + 1 && tokens >= chunkTokens * 0.75; end--) {
      if (pieces[end - 1]!.boundary >= wanted) return end;
      tokens -= pieces[end - 1]!.tokens;
    }
  }
  return last;
}

function sumTokens(pieces: Piece[], from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += pieces[i]!.tokens;
  return sum;
}
