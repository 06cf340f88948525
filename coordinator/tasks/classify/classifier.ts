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

/** A link's answer when it has nobody to ask for this request and spends no time: the next link decides at once. */
export interface Declined {
  declined: string;
}

/** Whether a link's `begin` declined (rather than promised an answer). */
export const isDeclined = (value: Promise<Classification> | Declined): value is Declined => "declined" in value;

export interface Classifier {
  classify(input: ClassifierInput): Promise<Classification>;
  /**
   * Optional, what the chain calls when present: classify's work, except that a link with nobody to ask says so at
   * once (`{ declined }`) instead of with a rejected ClassifierLinkDeclined, so that passing it costs no exception,
   * promise or turn of the event loop (the node link declines on most requests).
   */
  begin?(input: ClassifierInput): Promise<Classification> | Declined;
}
