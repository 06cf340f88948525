// The local rule-based difficulty classifier: always available, microseconds, no network. Reads what kind of
// request the last user turn makes (code, proof, worked steps, design → ADVANCED; summary, comparison,
// analysis, explanation, writing, long documents → COMPLEX; the rest → SIMPLE) in several languages.
import type { Difficulty } from "../../db/schema.ts";
import type { Classifier, ClassifierInput } from "../classifier.ts";
import * as cues from "./cues.ts";

/**
 * Prompts at least this long (in Latin-script characters) are COMPLEX whatever they ask: small models with short
 * contexts (the BASIC tier) cannot hold them. About 500 tokens.
 */
export const LONG_PROMPT_CHARS = 2_000;
/** Chinese, Japanese and Korean carry about three Latin characters' worth of text (and tokens) per character. */
const CJK_WEIGHT = 3;
/** Instructions sit at the start or the end of a long paste; only those ends are read for intent. */
const INSTRUCTION_WINDOW = 400;
/** Word problems and spelled-out sequences are judged on short requests only: documents are full of numbers. */
const SHORT_REQUEST_CHARS = 700;
/** How far into a paste to look for lines of code. */
const CODE_SCAN_CHARS = 8_000;

const cjk = /[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]/g;
// Quoted spans are material (a title, a sentence to translate), not the request: their words are not cues.
const quoted = /«[^»]*»|“[^”]*”|„[^“”]*[“”]|"[^"\n]*"|「[^」]*」|『[^』]*』|(?<=^|[\s:(])'[^'\n]{1,200}'(?=[\s.,;:!?)]|$)/gu;
const fence = /```|~~~/;
// Lines that start like code or end in ; or { (no \s: it would let one match run across lines and backtrack).
const codeLine =
  /^[ \t]*(?:def |class \w|function\b|async function|public |private |static |import [\w{*]|from \S+ import|#include|package \w|func |fn |let \w|const \w|var \w|return\b|if ?\(|for ?\(|while ?\(|\}|[^\n]*[;{][ \t]*$)/gm;
const sqlStatement = /\b(?:SELECT\b[^\n]*\bFROM|UPDATE\b[^\n]*\bSET|INSERT INTO|DELETE FROM|CREATE TABLE)\b/;
const latex = /\\(?:int|frac|sum|sqrt|lim|prod|infty|cdot|partial|mathbb|begin\{)|\$[^$\n]+\$/;
const mathSymbol = /[∫∑∏√∀∃∞≤≥≠∈∉⊂⊆∪∩∂∇]/;
// A lone letter used as a variable: x^2, n², f(x), n(n+1), 2x + 3, x - 3 = 0, 2^n.
const algebra =
  /(?<!\p{L})[a-z]\s*\^\s*[\da-z(]|(?<!\p{L})[a-z][²³]|\d\s*\^\s*[a-z]|(?<!\p{L})[a-zA-Z]\([a-z]\s*[)+\-]|\b\d+[xyz]\s*[+\-−=]|(?<!\p{L})[xyzn]\s*[+\-−*/=<>≤≥]\s*[\dxyzn(]/u;
const number = /\d+(?:[.,:]\d+)*/g;
const numberedLine = /^\s*\d+[.)]\s+\S/gm;

/**
 * How much text a string is, counting a CJK character as several Latin ones; counting stops past `cap`, so a
 * megabyte paste costs no more than a long prompt.
 */
export function textWeight(text: string, cap = 3 * LONG_PROMPT_CHARS): number {
  if (text.length >= cap) return text.length;
  return text.length + (CJK_WEIGHT - 1) * (text.match(cjk)?.length ?? 0);
}

function count(text: string, pattern: RegExp): number {
  return text.match(pattern)?.length ?? 0;
}

export function hasCode(text: string): boolean {
  if (fence.test(text) || sqlStatement.test(text)) return true;
  // two lines among the first few thousand are enough: a paste that is code shows it early
  const head = text.length > CODE_SCAN_CHARS ? text.slice(0, CODE_SCAN_CHARS) : text;
  codeLine.lastIndex = 0;
  return codeLine.exec(head) !== null && codeLine.exec(head) !== null;
}

function hasMath(text: string): boolean {
  return latex.test(text) || mathSymbol.test(text) || algebra.test(text);
}

/** The request (the last user turn) and what came before it; system turns set a persona, not a task. */
function readConversation(input: ClassifierInput): { request: string; earlier: string[] } {
  const turns = input.messages.filter((m) => m.role !== "system");
  let last = turns.length - 1;
  while (last > 0 && turns[last]!.role !== "user") last--;
  return { request: turns[last]?.content ?? "", earlier: turns.slice(0, Math.max(0, last)).map((m) => m.content) };
}

/** The part of the request that states what to do: both ends of a long paste, without quoted material, lowercased (cues are). */
function instructionOf(request: string): string {
  const ends =
    request.length <= 2 * INSTRUCTION_WINDOW
      ? request
      : `${request.slice(0, INSTRUCTION_WINDOW)}\n${request.slice(-INSTRUCTION_WINDOW)}`;
  return ends.replace(quoted, " ").toLowerCase();
}

/** For a translation, only the words before the material (up to a colon or line break) are instructions. */
function translationInstruction(instruction: string): string | undefined {
  const match = cues.translate.exec(instruction);
  if (!match) return undefined;
  // the translate words themselves go too: "how do you say" is not an explanation's "how do"
  const rest = instruction.slice(match.index + match[0].length);
  const end = rest.search(/[:：\n]/);
  return `${instruction.slice(0, match.index)} ${end < 0 ? rest : rest.slice(0, end)}`;
}

function asksForCode(text: string): boolean {
  if (cues.implement.test(text)) return true;
  const noun = cues.codeNoun.test(text);
  const language = cues.language.test(text);
  // cheapest first: most requests have neither a code noun nor a language, and then nothing else matters
  if (!noun && !language) return false;
  return cues.make.test(text) || cues.repair.test(text);
}

function asksForProof(text: string): boolean {
  return cues.proof.test(text) || (cues.showThat.test(text) && (cues.mathNoun.test(text) || hasMath(text)));
}

/** Work whose steps depend on each other: worked solutions, designs, phased plans, spelled-out sequences. */
function asksForSteps(text: string, short: boolean): boolean {
  if (cues.stepByStep.test(text)) return true;
  if (cues.designVerb.test(text) && cues.systemNoun.test(text)) return true;
  if (cues.planNoun.test(text) && cues.stepNoun.test(text)) return true;
  if (!short) return false;
  if (cues.sequenceStart.test(text) && cues.sequenceNext.test(text)) return true;
  if (count(text, numberedLine) >= 3) return true;
  // several given quantities and a question about another one: a word problem
  return count(text, number) >= 3 && cues.quantityQuestion.test(text);
}

function asksForAnalysis(text: string): boolean {
  return (
    cues.summarise.test(text) ||
    cues.compare.test(text) ||
    cues.analyse.test(text) ||
    cues.explain.test(text) ||
    (cues.writeVerb.test(text) && cues.genre.test(text)) ||
    cues.wordCount.test(text)
  );
}

/** Rule-based; the strongest signal wins, and when in doubt it leans up: a stronger node costs only time. */
export function classifyLocally(input: ClassifierInput): Difficulty {
  const { request, earlier } = readConversation(input);
  const weight = textWeight(request);
  const long = weight >= LONG_PROMPT_CHARS || earlier.reduce((sum, turn) => sum + textWeight(turn), weight) >= 3 * LONG_PROMPT_CHARS;
  const short = weight <= SHORT_REQUEST_CHARS;
  const instruction = instructionOf(request);
  const code = hasCode(request);

  const translation = translationInstruction(instruction);
  if (translation !== undefined && !long && !code && !cues.language.test(translation)) {
    if (asksForCode(translation) || asksForProof(translation) || asksForSteps(translation, false)) return "ADVANCED";
    return asksForAnalysis(translation) ? "COMPLEX" : "SIMPLE";
  }
  if (code) {
    // pasted code: changing it is ADVANCED, explaining or reviewing it COMPLEX; bare code most often wants fixing
    if (cues.repair.test(instruction) || asksForCode(instruction) || asksForSteps(instruction, false)) return "ADVANCED";
    if (cues.explainCode.test(instruction) || asksForAnalysis(instruction)) return "COMPLEX";
    return "ADVANCED";
  }
  if (asksForCode(instruction) || asksForProof(instruction) || (short && hasMath(request)) || asksForSteps(instruction, short)) {
    return "ADVANCED";
  }
  if (short && cues.followUpEdit.test(instruction) && earlier.some(hasCode)) return "ADVANCED";
  if (long || asksForAnalysis(instruction)) return "COMPLEX";
  return "SIMPLE";
}

export const localClassifier: Classifier = {
  async classify(input) {
    return { difficulty: classifyLocally(input), classifier: "local" };
  },
};
