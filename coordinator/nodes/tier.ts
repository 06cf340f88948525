// The SPEC's node tier rule: model size (adjusted for quantization) and benchmark speed → BASIC, MID or PRO.
//
// | tier  | rule                                          | serves                    |
// |-------|-----------------------------------------------|---------------------------|
// | BASIC | effective < 7B, or < 10 tokens/s              | SIMPLE                    |
// | MID   | effective 7–20B (inclusive) and 10–30 tok/s   | SIMPLE, COMPLEX           |
// | PRO   | effective > 20B, or > 30 tokens/s             | SIMPLE, COMPLEX, ADVANCED |
// The rows overlap (5B at 40 tok/s): BASIC's conditions are checked first, then PRO's, else MID.
//
// Quantization: effective parameters = parameters × min(1, bits / 4), where bits is the bit level the
// quantization's name gives (Q3_K_M → 3, IQ2_XXS → 2, TQ1_0 → 1, 4bit → 4). So Q2 counts as half the model,
// Q3 as three quarters, 1-bit as a quarter, and Q4 and above (Q4…Q8, MXFP4, FP8, F16, BF16, F32) as the whole
// model. Why 4: measured quality (perplexity) of Q4_K_M and above stays within a few percent of F16, while
// below 4 bits it falls off steeply, so a 3- or 2-bit model answers like a smaller one. An unstated
// quantization ("") counts as the whole model: servers that leave it out (vLLM, most Ollama defaults) run
// 4-bit or better, and the speed half of the rule still comes from the node's own benchmark.
//
// Unknown or nonsensical inputs (0, negative, NaN, Infinity) count as 0: an unknown size is < 7B and an
// unknown speed < 10 tok/s, i.e. BASIC. A node we cannot size must not be trusted with harder work; it is
// re-tiered as soon as it reports a model name or benchmark we can read.
//
// Self-contained on purpose: the bit level in the name is all this rule needs (common/model-name.ts has the
// finer bits-per-weight table). The speed it is given may be measured rather than declared: see capability.ts.
import { DIFFICULTIES, type Difficulty, difficultyRank, NODE_TIERS, type NodeTier } from "../../common/vocabulary.ts";

export interface TierInput {
  /** Total parameters; 0 when unknown. */
  parameterCount: number;
  /** As parsed from the model name (Q4_K_M, IQ2_XXS, F16 …); "" when unknown. */
  quantization: string;
  /** From the node's own start-up benchmark. */
  tokensPerSecond: number;
}

export interface TierDecision {
  tier: NodeTier;
  /** Parameters after the quantization factor; what the size rule compares. */
  effectiveParameters: number;
  /** One human sentence saying why, for logs and the dashboard. */
  reason: string;
}

const MID_MIN_PARAMETERS = 7e9;
const MID_MAX_PARAMETERS = 20e9;
const MID_MIN_TOKENS_PER_SECOND = 10;
const MID_MAX_TOKENS_PER_SECOND = 30;
const FULL_QUALITY_BITS = 4;

const HARDEST_SERVED: Record<NodeTier, Difficulty> = { BASIC: "SIMPLE", MID: "COMPLEX", PRO: "ADVANCED" };

export function tierFor(input: TierInput): TierDecision {
  const parameters = knownOrZero(input.parameterCount);
  const tokensPerSecond = knownOrZero(input.tokensPerSecond);
  const quantization = input.quantization.trim().toUpperCase();
  const effectiveParameters = parameters * qualityFactor(quantization);

  const tier: NodeTier =
    effectiveParameters < MID_MIN_PARAMETERS || tokensPerSecond < MID_MIN_TOKENS_PER_SECOND
      ? "BASIC"
      : effectiveParameters > MID_MAX_PARAMETERS || tokensPerSecond > MID_MAX_TOKENS_PER_SECOND
        ? "PRO"
        : "MID";

  const size =
    parameters === 0
      ? "unknown size counts as 0B"
      : `${sized(parameters)}${quantization ? ` ${quantization}` : ""} counts as ${sized(effectiveParameters)}`;
  const speed =
    tokensPerSecond === 0
      ? "unknown speed counts as 0 tok/s"
      : `${shown(tokensPerSecond, [MID_MIN_TOKENS_PER_SECOND, MID_MAX_TOKENS_PER_SECOND])} tok/s`;
  const reason =
    `${size} (${band(effectiveParameters / 1e9, 7, 20, "B")}); ${speed} ` +
    `(${band(tokensPerSecond, 10, 30, "")}) → ${tier}`;
  return { tier, effectiveParameters, reason };
}

/**
 * The share of its parameters a quantized model counts as: min(1, bits / 4), by the bit level in the name.
 * Exported for tests and for showing the rule on the dashboard.
 */
export function qualityFactor(quantization: string): number {
  const bits = bitLevel(quantization.trim().toUpperCase());
  return bits === undefined ? 1 : Math.min(1, bits / FULL_QUALITY_BITS);
}

/** The bit level a quantization name states: Q3_K_M, IQ3_XS → 3; TQ2_0 → 2; 4BIT, GPTQ-INT4 → 4; F16 → 16. */
function bitLevel(quantization: string): number | undefined {
  const match =
    /^(?:I|T)?Q(\d)(?:_|$)/.exec(quantization) ??
    /^(\d+)[-_]?BIT$/.exec(quantization) ??
    /^GPTQ[-_]INT(\d)$/.exec(quantization) ??
    /^B?FP?(\d+)$/.exec(quantization) ??
    /^MXFP(\d)$/.exec(quantization);
  return match ? Number(match[1]) : undefined;
}

export function servesDifficulty(tier: NodeTier, difficulty: Difficulty): boolean {
  return difficultyRank(difficulty) <= difficultyRank(HARDEST_SERVED[tier]);
}

/** The tiers that can take work of this difficulty, lowest first (one list a difficulty: routing asks per request). */
export function tiersServing(difficulty: Difficulty): readonly NodeTier[] {
  return SERVING[difficulty];
}

const SERVING = Object.fromEntries(
  DIFFICULTIES.map((difficulty) => [
    difficulty,
    Object.freeze(NODE_TIERS.filter((tier) => servesDifficulty(tier, difficulty))),
  ]),
) as Record<Difficulty, readonly NodeTier[]>;

function knownOrZero(value: number): number {
  return Number.isFinite(value) && value > 0 ? value : 0;
}

/** Where a value sits against the MID band: "< 7B", "7–20B" or "> 20B". */
function band(value: number, low: number, high: number, unit: string): string {
  if (value < low) return `< ${low}${unit}`;
  if (value > high) return `> ${high}${unit}`;
  return `${low}–${high}${unit}`;
}

/** 8e9 → "8B", 20.000001e9 → "20.000001B", 350e6 → "350M", 139_840 → "140K" (a tiny model is not "0.000140B"). */
function sized(parameters: number): string {
  const billions = parameters / 1e9;
  if (billions >= 1 || parameters === 0)
    return `${shown(billions, [MID_MIN_PARAMETERS / 1e9, MID_MAX_PARAMETERS / 1e9])}B`;
  if (parameters >= 1e6) return `${shown(parameters / 1e6, [])}M`;
  return `${shown(parameters / 1e3, [])}K`;
}

/**
 * One decimal (888.673632 → "888.7", 42 → "42"), and as many more as it takes, up to six, for a value near a
 * boundary of the rule not to print as the boundary itself (29.96 tok/s is "29.96", not "30"; 20.000001B likewise).
 */
function shown(value: number, boundaries: readonly number[]): string {
  for (let digits = 1; digits < 6; digits++) {
    const rounded = Number(value.toFixed(digits));
    if (!boundaries.some((b) => rounded === b && value !== b)) return String(rounded);
  }
  return String(Number(value.toFixed(6)));
}
