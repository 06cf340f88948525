// What the local difficulty model reads from a conversation: hashed character 1–4-grams, words and word pairs of
// the request (the last user turn), read apart as prose, code, quoted material and the two ends of the prose, plus a
// few shape features (length, lines, code-like lines, numbers, earlier turns). Language-independent: no word lists,
// no per-language rules; the weights come from training (train.ts).
import { isWordCode, normalize, textWeight, WEIGHT_SCAN_CHARS } from "./characters.ts";

/** Changing anything that moves a feature index bumps this; a model file trained on another version is refused. */
export const FEATURE_VERSION = 3;
/** Hashed features land in 2^BUCKET_BITS buckets; the last SHAPE_SLOTS of them are the shape features. */
export const BUCKET_BITS = 17;
export const BUCKETS = 1 << BUCKET_BITS;
const SHAPE_SLOTS = 64;
const HASHED_BUCKETS = BUCKETS - SHAPE_SLOTS;
const MAX_NGRAM = 4;
/** Longer words (a CJK clause, a URL, a hash) add no word feature: they would be unique anyway. */
const MAX_WORD_CHARS = 24;
/** A long paste is read at both ends, where instructions sit; its length still counts in full. */
const WINDOW_CHARS = 700;
/** The ends of the prose, where requests state what they want, are read once more on their own. */
const EDGE_CHARS = 80;
/**
 * Room for the features of one request: a window character yields at most MAX_NGRAM n-grams and two word features,
 * and appears at most twice (quoted material keeps a marker in the prose); then the ends and the shapes.
 */
export const MAX_FEATURES = (4 * WINDOW_CHARS + 64) * (MAX_NGRAM + 2) + 2 * EDGE_CHARS * MAX_NGRAM + SHAPE_SLOTS;

/**
 * One request's features: `indices[i]` is a bucket and `values[i]` its value. Hashed features come in groups (the
 * prose, the code, the quoted material, the two ends of the prose), each scaled to unit length (1/‖counts‖₂) so that
 * neither a long paste nor a long instruction drowns the other; shape features are worth 1.
 */
export interface Features {
  indices: Int32Array;
  values: Float64Array;
  count: number;
  /** The request's textWeight: how much text it is, not a feature of the model. */
  weight: number;
}

interface Message {
  role: string;
  content: string;
}

// Shape slots: [first slot, thresholds]; the value's bin is the number of thresholds it reaches.
const SHAPES = {
  weight: [0, [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]],
  lines: [11, [2, 3, 6, 13]],
  codeLines: [16, [1, 2, 4, 10]],
  backticks: [21, [1, 3]],
  numbers: [24, [1, 2, 3, 6, 11]],
  questions: [30, [1, 2]],
  earlierTurns: [33, [1, 3]],
  earlierWeight: [36, [1, 200, 2000, 6000]],
  earlierCode: [41, [1]],
  quoted: [43, [1, 100, 300]],
} as const satisfies Record<string, readonly [number, readonly number[]]>;

function bin(value: number, thresholds: readonly number[]): number {
  let b = 0;
  while (b < thresholds.length && value >= thresholds[b]!) b++;
  return b;
}

function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const WORD_SALT = 0x9e3779b9;
const BIGRAM_SALT = 0x85ebca6b;

// Lines that look like code: ending in ; { } or starting with a keyword most languages share.
const codeLinePattern = new RegExp(
  "^[ \\t]*(?:def |class |import |from \\S+ import|return\\b|function\\b|const |let |var " +
    "|public |private |#include|fn |func |for ?\\(|if ?\\(|while ?\\(|SELECT |print\\(|console\\.)" +
    "|[;{}][ \\t]*$",
  "gm",
);

function countMatches(text: string, pattern: RegExp): number {
  pattern.lastIndex = 0;
  let n = 0;
  while (pattern.exec(text) !== null) n++;
  return n;
}

/** The request (the last user turn) and the turns before it; system turns set a persona, not a task. */
function splitConversation(messages: readonly Message[]): { request: string; earlier: Message[] } {
  const turns = messages.filter((m) => m.role !== "system");
  let last = turns.length - 1;
  while (last > 0 && turns[last]!.role !== "user") last--;
  return { request: turns[last]?.content ?? "", earlier: turns.slice(0, Math.max(0, last)) };
}

/** A line shaped like code (fenced lines are code without asking): a keyword start, a ; { } end, or mostly brackets. */
function isCodeLine(line: string): boolean {
  codeLinePattern.lastIndex = 0;
  if (codeLinePattern.test(line)) return true;
  let symbols = 0;
  let visible = 0;
  for (let i = 0; i < line.length; i++) {
    const code = line.charCodeAt(i);
    if (code > 0x20) visible++;
    if (
      code === 0x3b ||
      code === 0x7b ||
      code === 0x7d ||
      code === 0x28 ||
      code === 0x29 ||
      code === 0x3d ||
      code === 0x5b ||
      code === 0x5d
    )
      symbols++;
  }
  return symbols >= 3 && symbols * 8 >= visible;
}

/**
 * Writes the n-grams (and, with `words`, the words and word pairs) of codes[from, to) under `salt`; returns the new
 * count.
 */
function emitGroup(
  codes: Uint16Array,
  from: number,
  to: number,
  salt: number,
  words: boolean,
  out: Features,
  n: number,
): number {
  const { indices, values } = out;
  const start = n;
  let word = FNV_OFFSET;
  let wordChars = 0;
  let previousWord = 0;
  for (let i = from; i < to; i++) {
    let h = FNV_OFFSET ^ salt;
    const end = Math.min(to, i + MAX_NGRAM);
    for (let j = i; j < end; j++) {
      h = Math.imul(h ^ codes[j]!, FNV_PRIME);
      indices[n++] = mix(h ^ (j - i)) % HASHED_BUCKETS;
    }
    if (!words) continue;
    const code = codes[i]!;
    if (isWordCode(code)) {
      word = Math.imul(word ^ code, FNV_PRIME);
      wordChars++;
    } else if (wordChars > 0) {
      if (wordChars <= MAX_WORD_CHARS) {
        const w = mix(word ^ WORD_SALT ^ salt);
        indices[n++] = w % HASHED_BUCKETS;
        if (previousWord !== 0)
          indices[n++] = mix(Math.imul(previousWord, FNV_PRIME) ^ w ^ BIGRAM_SALT) % HASHED_BUCKETS;
        previousWord = w;
      } else previousWord = 0;
      word = FNV_OFFSET;
      wordChars = 0;
    }
  }
  // 1/‖counts‖₂: a sentence pasted ten times weighs what it weighs once, instead of √10 times as much
  let squares = 0;
  for (let k = start; k < n; k++) squares += 2 * occurrences[indices[k]!]!++ + 1;
  for (let k = start; k < n; k++) occurrences[indices[k]!] = 0;
  values.fill(squares === 0 ? 0 : 1 / Math.sqrt(squares), start, n);
  return n;
}

/** Scratch for emitGroup: how often each bucket occurs in the group being written; all zero between calls. */
const occurrences = new Uint16Array(HASHED_BUCKETS);

const PROSE_SALT = 0;
const CODE_SALT = 0x27d4eb2f;
const EDGE_SALT = 0x165667b1;
const MATERIAL_SALT = 0x61c88647;
/** Quoted spans long enough to be material (a text to summarise or translate), not words of the request. */
const quotedMaterial = /«[^»]{30,}»|“[^”]{30,}”|„[^“”]{30,}[“”]|"[^"\n]{30,}"|「[^」]{30,}」|『[^』]{30,}』/g;

/**
 * The features of a conversation, written into `out` (reused between calls). Pure and deterministic; training and
 * serving share it, so they read requests alike.
 */
export function extractFeatures(messages: readonly Message[], out: Features = newFeatures()): Features {
  const { request, earlier } = splitConversation(messages);
  const window =
    request.length <= 2 * WINDOW_CHARS ? request : `${request.slice(0, WINDOW_CHARS)}\n${request.slice(-WINDOW_CHARS)}`;
  const text = window.toLowerCase();

  // prose, code and quoted material apart: a pasted snippet or text must not drown the sentence that says what
  // to do with it, nor lend it its numbers and words
  let material = "";
  const unquoted = text.replace(quotedMaterial, (span) => {
    material += `${span}\n`;
    return ' " ';
  });
  let prose = "";
  let code = "";
  let fenced = false;
  let codeLines = 0;
  for (const line of unquoted.split("\n")) {
    const fence = line.trimStart().startsWith("```");
    if (fence) fenced = !fenced;
    if (fence || fenced || isCodeLine(line)) {
      code += `${line}\n`;
      if (!fence) codeLines++;
    } else prose += `${line}\n`;
  }
  const proseCodes = new Uint16Array(prose.length + 2);
  const proseLength = normalize(prose, proseCodes);
  const codeCodes = new Uint16Array(code.length + 2);
  const codeLength = code === "" ? 0 : normalize(code, codeCodes);
  const materialCodes = new Uint16Array(material.length + 2);
  const materialLength = material === "" ? 0 : normalize(material, materialCodes);

  let n = emitGroup(proseCodes, 0, proseLength, PROSE_SALT, true, out, 0);
  n = emitGroup(codeCodes, 0, codeLength, CODE_SALT, true, out, n);
  n = emitGroup(materialCodes, 0, materialLength, MATERIAL_SALT, true, out, n);
  if (proseLength > 2 * EDGE_CHARS) {
    n = emitGroup(proseCodes, 0, EDGE_CHARS, EDGE_SALT, false, out, n);
    n = emitGroup(proseCodes, proseLength - EDGE_CHARS, proseLength, EDGE_SALT, false, out, n);
  } else {
    n = emitGroup(proseCodes, 0, proseLength, EDGE_SALT, false, out, n);
  }

  const { indices, values } = out;
  const shape = (name: keyof typeof SHAPES, value: number) => {
    const [first, thresholds] = SHAPES[name];
    values[n] = 1;
    indices[n++] = HASHED_BUCKETS + first + bin(value, thresholds);
  };
  out.weight = textWeight(request);
  shape("weight", out.weight);
  shape("lines", countMatches(window, /\n/g) + 1);
  shape("codeLines", codeLines);
  shape("quoted", material.length);
  shape("backticks", countMatches(window, /`/g));
  shape("numbers", countMatches(window, /\d+/g));
  shape("questions", countMatches(window, /[?？؟]/g));
  shape("earlierTurns", earlier.length);
  let earlierWeight = 0;
  let earlierCode = 0;
  for (const turn of earlier) {
    earlierWeight += Math.min(turn.content.length, WEIGHT_SCAN_CHARS);
    if (
      earlierCode === 0 &&
      (turn.content.includes("```") || countMatches(turn.content.slice(0, 4_000), codeLinePattern) >= 2)
    )
      earlierCode = 1;
  }
  shape("earlierWeight", earlierWeight);
  shape("earlierCode", earlierCode);
  out.count = n;
  return out;
}

export function newFeatures(): Features {
  return { indices: new Int32Array(MAX_FEATURES), values: new Float64Array(MAX_FEATURES), count: 0, weight: 0 };
}
