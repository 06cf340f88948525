// The tier rule at every boundary of the SPEC's table, with quantization and unknown inputs.
import { describe, expect, it } from "vitest";
import type { Difficulty, NodeTier } from "../../common/vocabulary.ts";
import { qualityFactor, servesDifficulty, tierFor, tiersServing } from "./tier.ts";

const B = 1e9;

describe("tierFor", () => {
  it.each<[string, number, string, number, NodeTier]>([
    // label, parameters, quantization, tokens/s, tier
    ["small model, slow", 3 * B, "Q4_K_M", 5, "BASIC"],
    ["6.99B is below MID", 6.99 * B, "Q8_0", 20, "BASIC"],
    ["7B exactly is MID", 7 * B, "Q8_0", 20, "MID"],
    ["20B exactly is MID", 20 * B, "Q8_0", 20, "MID"],
    ["20.000001B is PRO", 20.000001 * B, "Q8_0", 20, "PRO"],
    ["9.99 tok/s is BASIC even for a big model", 70 * B, "Q4_K_M", 9.99, "BASIC"],
    ["10 tok/s exactly is MID", 8 * B, "Q4_K_M", 10, "MID"],
    ["30 tok/s exactly is MID", 8 * B, "Q4_K_M", 30, "MID"],
    ["30.1 tok/s is PRO", 8 * B, "Q4_K_M", 30.1, "PRO"],
    ["big model at MID speed is PRO", 32 * B, "Q4_K_M", 15, "PRO"],
    ["both PRO conditions", 70 * B, "F16", 45, "PRO"],
    // Overlapping rows: BASIC's conditions win over PRO's.
    ["5B at 40 tok/s (SPEC's overlap example)", 5 * B, "Q4_K_M", 40, "BASIC"],
    ["70B at 8 tok/s", 70 * B, "Q4_K_M", 8, "BASIC"],
    // Quantization moves a node across a boundary.
    ["8B Q2_K counts as 4B", 8 * B, "Q2_K", 20, "BASIC"],
    ["8B Q4_K_M stays 8B", 8 * B, "Q4_K_M", 20, "MID"],
    ["24B Q3_K_M counts as 18B", 24 * B, "Q3_K_M", 20, "MID"],
    ["24B Q4_K_M stays 24B", 24 * B, "Q4_K_M", 20, "PRO"],
    ["32B IQ2_XXS counts as 16B", 32 * B, "IQ2_XXS", 25, "MID"],
    ["70B IQ1_M counts as 17.5B", 70 * B, "IQ1_M", 25, "MID"],
    ["13B IQ3_XS counts as 9.75B", 13 * B, "IQ3_XS", 25, "MID"],
    ["9B Q3_K_S counts as 6.75B", 9 * B, "Q3_K_S", 25, "BASIC"],
    ["28B Q3_K_L counts as 21B", 28 * B, "Q3_K_L", 25, "PRO"],
    ["quantization does not slow a fast node down", 8 * B, "Q2_K", 50, "BASIC"],
    ["lower-case quantization", 8 * B, "q2_k", 20, "BASIC"],
    ["MLX 3-bit counts as three quarters", 24 * B, "3bit", 20, "MID"],
    // Unknowns.
    ["unknown size at any speed", 0, "Q4_K_M", 100, "BASIC"],
    ["unknown speed", 70 * B, "Q4_K_M", 0, "BASIC"],
    ["NaN speed", 70 * B, "Q4_K_M", Number.NaN, "BASIC"],
    ["Infinity speed is not believed", 8 * B, "Q4_K_M", Number.POSITIVE_INFINITY, "BASIC"],
    ["negative size", -8 * B, "Q4_K_M", 20, "BASIC"],
    ["unknown quantization counts as the whole model", 24 * B, "", 20, "PRO"],
    ["unrecognised quantization counts as the whole model", 8 * B, "AWQ", 20, "MID"],
  ])("%s → %s", (_label, parameterCount, quantization, tokensPerSecond, tier) => {
    expect(tierFor({ parameterCount, quantization, tokensPerSecond }).tier).toBe(tier);
  });

  it.each<[number, string, number]>([
    [8 * B, "Q2_K", 4 * B],
    [24 * B, "Q3_K_M", 18 * B],
    [70 * B, "IQ1_S", 17.5 * B],
    [8 * B, "Q4_K_M", 8 * B],
    [8 * B, "F16", 8 * B],
    [0, "Q2_K", 0],
  ])("%d parameters at %s count as %d", (parameterCount, quantization, effective) => {
    expect(tierFor({ parameterCount, quantization, tokensPerSecond: 20 }).effectiveParameters).toBe(effective);
  });

  it.each<[number, string, number, string]>([
    [8 * B, "Q4_K_M", 42, "8B Q4_K_M counts as 8B (7–20B); 42 tok/s (> 30) → PRO"],
    [8 * B, "Q2_K", 20, "8B Q2_K counts as 4B (< 7B); 20 tok/s (10–30) → BASIC"],
    [24 * B, "Q3_K_M", 20, "24B Q3_K_M counts as 18B (7–20B); 20 tok/s (10–30) → MID"],
    [20.000001 * B, "", 12.345, "20.000001B counts as 20.000001B (> 20B); 12.3 tok/s (10–30) → PRO"],
    // a speed or size is shown to a tenth, more only where rounding would land on a boundary of the rule
    [8 * B, "Q4_K_M", 29.96, "8B Q4_K_M counts as 8B (7–20B); 29.96 tok/s (10–30) → MID"],
    [6.98 * B, "F16", 9.999, "6.98B F16 counts as 6.98B (< 7B); 9.999 tok/s (< 10) → BASIC"],
    // the generated tiny model: never "0.00014B" or "888.673632 tok/s"
    [139_840, "F32", 888.673632, "139.8K F32 counts as 139.8K (< 7B); 888.7 tok/s (> 30) → BASIC"],
    [350e6, "Q8_0", 60, "350M Q8_0 counts as 350M (< 7B); 60 tok/s (> 30) → BASIC"],
    [0, "", 55, "unknown size counts as 0B (< 7B); 55 tok/s (> 30) → BASIC"],
    [13 * B, "Q5_K_M", 0, "13B Q5_K_M counts as 13B (7–20B); unknown speed counts as 0 tok/s (< 10) → BASIC"],
  ])("explains %d %s at %d tok/s", (parameterCount, quantization, tokensPerSecond, reason) => {
    expect(tierFor({ parameterCount, quantization, tokensPerSecond }).reason).toBe(reason);
  });
});

describe("qualityFactor", () => {
  it.each<[string, number]>([
    ["IQ1_S", 0.25],
    ["TQ1_0", 0.25],
    ["Q2_K", 0.5],
    ["IQ2_XXS", 0.5],
    ["TQ2_0", 0.5],
    ["2BIT", 0.5],
    ["Q3_K_M", 0.75],
    ["IQ3_XS", 0.75],
    ["Q4_0", 1],
    ["Q4_K_M", 1],
    ["IQ4_XS", 1],
    ["Q5_K_M", 1],
    ["Q6_K", 1],
    ["Q8_0", 1],
    ["MXFP4", 1],
    ["GPTQ-INT4", 1],
    ["FP8", 1],
    ["F16", 1],
    ["BF16", 1],
    ["F32", 1],
    ["", 1],
    ["something new", 1],
  ])("%j → %s", (quantization, factor) => {
    expect(qualityFactor(quantization)).toBe(factor);
  });
});

describe("servesDifficulty and tiersServing", () => {
  it.each<[NodeTier, Difficulty, boolean]>([
    ["BASIC", "SIMPLE", true],
    ["BASIC", "COMPLEX", false],
    ["BASIC", "ADVANCED", false],
    ["MID", "SIMPLE", true],
    ["MID", "COMPLEX", true],
    ["MID", "ADVANCED", false],
    ["PRO", "SIMPLE", true],
    ["PRO", "COMPLEX", true],
    ["PRO", "ADVANCED", true],
  ])("%s serves %s: %s", (tier, difficulty, serves) => {
    expect(servesDifficulty(tier, difficulty)).toBe(serves);
  });

  it.each<[Difficulty, NodeTier[]]>([
    ["SIMPLE", ["BASIC", "MID", "PRO"]],
    ["COMPLEX", ["MID", "PRO"]],
    ["ADVANCED", ["PRO"]],
  ])("%s is served by %j, lowest first", (difficulty, tiers) => {
    expect(tiersServing(difficulty)).toEqual(tiers);
  });
});
