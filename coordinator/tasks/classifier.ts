// Judges a request's difficulty. The local rule-based classifier is always available and takes microseconds;
// the classifier chain (OpenRouter, a node) plugs in behind the same interface later.
import type { Difficulty } from "../db/schema.ts";

export interface ClassifierInput {
  messages: { role: string; content: string }[];
}

export interface Classification {
  difficulty: Difficulty;
  /** Which classifier decided: "local", "openrouter", "node", "hint". */
  classifier: string;
}

export interface Classifier {
  classify(input: ClassifierInput): Promise<Classification>;
}

// Signals of work that needs the strongest nodes: code, proofs, multi-step reasoning.
const advanced = [
  /```/,
  /\b(write|implement|build|create|generate|refactor|debug|fix)\b[^.?!\n]{0,60}\b(code|function|program|script|class|module|api|algorithm|parser|compiler|regex|query|sql|app|server)\b/i,
  /\b(prove|proof|theorem|lemma|derive|derivation|formally)\b/i,
  /\bstep[- ]by[- ]step\b/i,
  /\b(time|space) complexity\b/i,
  /\b(python|javascript|typescript|rust|golang|java|c\+\+|haskell|sql)\b.*\b(function|code|program|script)\b/i,
  /\b(multi-step|plan and execute|design (a|an) (system|architecture))\b/i,
];
// Signals of analysis that a mid-sized model handles: summaries, comparisons, explanations.
const complex = [
  /\b(summari[sz]e|summary|tl;?dr)\b/i,
  /\b(compare|comparison|contrast|versus|vs\.?|pros and cons|trade-?offs?)\b/i,
  /\b(analy[sz]e|analysis|evaluate|assess|critique|review)\b/i,
  /\b(explain|why does|why is|how does)\b/i,
  /\b(essay|report|article|outline)\b/i,
];

/** Prompts longer than this (characters) are at least COMPLEX: a long text rarely has a one-line answer. */
const longPromptChars = 2_000;

/** Rule-based: the strongest signal wins; short plain questions, translations and definitions are SIMPLE. */
export function classifyLocally(input: ClassifierInput): Difficulty {
  const text = input.messages.map((m) => m.content).join("\n");
  if (advanced.some((rule) => rule.test(text))) return "ADVANCED";
  if (text.length > longPromptChars || complex.some((rule) => rule.test(text))) return "COMPLEX";
  return "SIMPLE";
}

export const localClassifier: Classifier = {
  async classify(input) {
    return { difficulty: classifyLocally(input), classifier: "local" };
  },
};

const rank: Record<Difficulty, number> = { SIMPLE: 0, COMPLEX: 1, ADVANCED: 2 };

/**
 * A caller's difficulty hint is honoured when it asks for at least the classified difficulty: asking for a
 * stronger node only costs the caller waiting time, while asking for a weaker one would let anyone send
 * hard work to nodes that cannot do it well. (Privileged callers lowering it comes with authentication.)
 */
export function applyHint(classified: Classification, hint: Difficulty | undefined): Classification {
  if (hint && rank[hint] > rank[classified.difficulty]) return { difficulty: hint, classifier: "hint" };
  return classified;
}
