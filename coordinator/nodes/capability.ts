// Declared against measured capability (docs/concepts/tiers.md, "How capability is verified"): what a node's answers
// show of its
// speed, context window and model, and the tier that rests on it. Pure rules, table-tested in capability.test.ts.
import { parseModelName } from "../../common/model-name.ts";
import { tierFor, type TierDecision } from "./tier.ts";

/** Answers shorter than this say more about latency than speed: they are not speed samples. */
const SPEED_SAMPLE_MIN_TOKENS = 16;
/** The speed verdict looks at this many latest samples... */
export const SPEED_WINDOW = 10;
/** ...and needs at least this many before it says anything. */
const SPEED_MIN_SAMPLES = 5;
/** A median below this share of the declared benchmark contradicts it. */
const SPEED_CONTRADICTS_BELOW = 0.5;

/**
 * A refusal ("context too long") contradicts the declared window only when the request (estimated prompt tokens plus
 * its max_tokens, the room some servers keep for the answer) is under this share of it: the rest covers the chat
 * template and the estimate's error.
 */
const CONTEXT_CONTRADICTS_BELOW = 0.5;

/** How far a declared value has been checked (NodeVerification in network.proto). */
export type Verification = "declared" | "verified" | "contradicted" | "inferred";

export interface SpeedVerdict {
  verification: Verification;
  /** Median of the latest samples; 0 with none. */
  measured: number;
  samples: number;
  /** The speed the tier rule is given: the declared one unless contradicted (or never declared). */
  tierSpeed: number;
}

export interface AnswerTiming {
  /** As the node reported them. */
  completionTokens: number;
  /** UTF-8 bytes of the answer the coordinator received: no token is shorter than a byte. */
  answerBytes: number;
  /** Chunks that came before the result. */
  chunks: number;
  /** First chunk → result; 0 when nothing was streamed. */
  generationMs: number;
  /** Assignment → result. */
  responseMs: number;
  /** No other task ran on the node from assignment to result (the benchmark measures one stream). */
  solo: boolean;
}

/**
 * Tokens/s of one answer, as the agent's benchmark measures it: tokens after the first over the time after the
 * first chunk; an answer sent whole (one chunk or none) over its response time. The token count is the node's,
 * capped by the bytes it sent, so inflating it buys little. undefined when the answer is no sample: shared with
 * other tasks, or shorter than SPEED_SAMPLE_MIN_TOKENS.
 */
export function speedSample(timing: AnswerTiming): number | undefined {
  const tokens = Math.min(timing.completionTokens, timing.answerBytes);
  if (!timing.solo || tokens < SPEED_SAMPLE_MIN_TOKENS) return undefined;
  if (timing.chunks >= 2 && timing.generationMs > 0) return ((tokens - 1) * 1000) / timing.generationMs;
  return timing.responseMs > 0 ? (tokens * 1000) / timing.responseMs : undefined;
}

export function speedVerdict(declared: number, samples: readonly number[]): SpeedVerdict {
  const recent = samples.slice(-SPEED_WINDOW);
  const measured = recent.length > 0 ? median(recent) : 0;
  const declaredSpeed = Number.isFinite(declared) && declared > 0 ? declared : 0;
  if (recent.length < SPEED_MIN_SAMPLES)
    return { verification: "declared", measured, samples: recent.length, tierSpeed: declaredSpeed };
  if (declaredSpeed === 0) return { verification: "inferred", measured, samples: recent.length, tierSpeed: measured };
  const contradicted = measured < declaredSpeed * SPEED_CONTRADICTS_BELOW;
  return {
    verification: contradicted ? "contradicted" : "verified",
    measured,
    samples: recent.length,
    tierSpeed: contradicted ? measured : declaredSpeed,
  };
}

export interface DeclaredModel {
  modelName: string;
  parameterCount: number;
  quantization: string;
}

/**
 * A node's size as the tier rule takes it: what it declared, with what it left out (0 parameters, no
 * quantization) parsed from its model name by the coordinator, which then says "inferred".
 */
export function sizeOf(declared: DeclaredModel): { parameterCount: number; quantization: string; size: Verification } {
  const parameterCount =
    Number.isFinite(declared.parameterCount) && declared.parameterCount > 0 ? declared.parameterCount : 0;
  if (parameterCount > 0 && declared.quantization !== "")
    return { parameterCount, quantization: declared.quantization, size: "declared" };
  const parsed = parseModelName(declared.modelName);
  const filled = {
    parameterCount: parameterCount || parsed.parameterCount,
    quantization: declared.quantization || parsed.quantization,
  };
  const inferred = filled.parameterCount !== parameterCount || filled.quantization !== declared.quantization;
  return { ...filled, size: inferred ? "inferred" : "declared" };
}

/** The tier from the (size-completed) declaration and the measured speed; the reason says which speed it used. */
export function measuredTier(
  model: { parameterCount: number; quantization: string },
  declaredSpeed: number,
  speed: SpeedVerdict,
): TierDecision {
  const decision = tierFor({
    parameterCount: model.parameterCount,
    quantization: model.quantization,
    tokensPerSecond: speed.tierSpeed,
  });
  if (speed.verification === "contradicted") {
    const declared = round(declaredSpeed);
    return {
      ...decision,
      reason: `${decision.reason} (measured median of ${speed.samples} answers; declared ${declared} tok/s)`,
    };
  }
  if (speed.verification === "inferred")
    return { ...decision, reason: `${decision.reason} (measured median of ${speed.samples} answers; none declared)` };
  return decision;
}

export interface ContextVerdict {
  verification: Verification;
  /** What routing and context mode should count on: the declared window, lowered to a refusal below it. */
  effective: number;
}

/**
 * Declared until checked: contradicted when the node refused as too long a request (prompt estimate + max_tokens)
 * under half its declared window (the estimate errs large, in the node's favour); verified once it completed a task
 * filling it.
 */
export function contextVerdict(declared: number, proven: number, refusedAt: number | undefined): ContextVerdict {
  if (declared > 0 && refusedAt !== undefined && refusedAt < declared * CONTEXT_CONTRADICTS_BELOW)
    return { verification: "contradicted", effective: refusedAt };
  if (declared > 0 && proven >= declared) return { verification: "verified", effective: declared };
  return { verification: "declared", effective: declared };
}

/** What a canary against a peer of the same model last showed. */
export interface IdentityRecord {
  verdict: "verified" | "contradicted";
  /** The peer node the answers were compared with. */
  peer: string;
  at: number;
}

/**
 * The model's identity: verified or contradicted only by a canary compared with a node of another account serving
 * the same model; file fingerprints are declared too, so they only add words (a differing one is worth knowing).
 */
export function modelVerdict(
  identity: IdentityRecord | undefined,
  fingerprints: { same: number; different: number },
): { verification: Verification; evidence: string } {
  const words: string[] = [];
  if (identity)
    words.push(
      `${identity.verdict === "verified" ? "answered like" : "answered unlike"} node ${identity.peer} on a canary`,
    );
  if (fingerprints.same > 0)
    words.push(`file fingerprint matches ${fingerprints.same} other node${fingerprints.same === 1 ? "" : "s"}`);
  if (fingerprints.different > 0)
    words.push(
      `file fingerprint differs from ${fingerprints.different} node${fingerprints.different === 1 ? "" : "s"} ` +
        `serving the same name`,
    );
  return {
    verification: identity?.verdict ?? "declared",
    evidence: words.length > 0 ? words.join("; ") : "nothing to compare with yet",
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function round(value: number): string {
  return String(Number(value.toFixed(1)));
}
