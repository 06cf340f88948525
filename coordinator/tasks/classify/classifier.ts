// What a classifier is: the interface every link of the chain (OpenRouter, a node, the local model) implements,
// what it reads and what it answers.
import type { Difficulty } from "../../../common/vocabulary.ts";

export interface ClassifierInput {
  messages: { role: string; content: string }[];
  /** Aborts when the answer is no longer wanted (the link's budget ran out, or the client went away). */
  signal?: AbortSignal;
}

export interface Classification {
  difficulty: Difficulty;
  /** Which classifier decided: "openrouter", "node", "local" or "hint" (the values of Accepted.classifier). */
  classifier: string;
  /** The answer came from the chain's cache: `classifier` is the link that decided it the first time. */
  cached?: boolean;
}

export interface Classifier {
  classify(input: ClassifierInput): Promise<Classification>;
}
