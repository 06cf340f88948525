// The caller's difficulty hint against the classifier's verdict: anyone may raise the difficulty, only a trusted
// caller (an admin) may lower it, and a trusted hint decides without asking any classifier.
import { difficultyRank, type Difficulty } from "../../../common/vocabulary.ts";
import type { Classification, Classifier, ClassifierInput } from "./classifier.ts";

export interface HintPolicy {
  /**
   * The caller may set any difficulty, lower ones included: operators (a JWT with role admin). Everyone else may
   * only raise it.
   */
  trusted?: boolean;
}

/**
 * A caller's difficulty hint is honoured when it asks for at least the classified difficulty: asking for a
 * stronger node only costs the caller waiting time, while asking for a weaker one would let anyone send hard
 * work to nodes that cannot do it well. A trusted caller's hint is honoured either way.
 */
export function applyHint(
  classified: Classification,
  hint: Difficulty | undefined,
  policy: HintPolicy = {},
): Classification {
  if (!hint || hint === classified.difficulty) return classified;
  if (policy.trusted || difficultyRank(hint) > difficultyRank(classified.difficulty))
    return { difficulty: hint, classifier: "hint" };
  return classified;
}

/**
 * Classifies, then applies the hint; a trusted caller's hint decides without asking any classifier, so an
 * operator's explicit choice spends no OpenRouter call or node time.
 */
export async function classifyWithHint(
  classifier: Classifier,
  input: ClassifierInput,
  hint: Difficulty | undefined,
  policy: HintPolicy = {},
): Promise<Classification> {
  if (hint && policy.trusted) return { difficulty: hint, classifier: "hint" };
  return applyHint(await classifier.classify(input), hint, policy);
}
