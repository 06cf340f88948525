// Reads a model's parameter count, quantization and family from its name (GGUF file, LM Studio id, Ollama tag).
// Pure and shared: the agent parses what its backend serves, the coordinator parses names nodes send without a size.

export interface ModelInfo {
  /** Total parameters; 0 when the name does not say and no alias is known. */
  parameterCount: number;
  /** Upper case, as llama.cpp spells it (Q4_K_M, IQ4_XS, F16, BF16, MXFP4); "" when the name does not say. */
  quantization: string;
  /** Lower-case model family (llama, qwen, mistral, mixtral, phi, gemma, deepseek, gpt-oss …). */
  family: string;
}

// Quantization tokens, bounded by separators so that "qwen2" or "q4" inside a word never match. Covers
// llama.cpp's types (Q4_0, Q4_0_4_4, Q4_K_M, IQ2_XXS, TQ1_0, unsloth's Q4_K_XL), float formats, and the
// names vLLM / MLX models carry (FP8, AWQ, GPTQ-Int4, 4bit).
const QUANT_TOKEN = new RegExp(
  "(?<=^|[-_.@:\\s/])(" +
    [
      "I?Q[1-8]_(?:K(?:_(?:XL|S|M|L))?|[01](?:_[48]_[48])?|NL|XXS|XS|S|M|L)",
      "TQ[12]_0",
      "MXFP4",
      "BF16",
      "FP?16",
      "FP?32",
      "FP8",
      "AWQ",
      "GPTQ[-_]INT[48]",
      "[2-8][-_]?BIT",
    ].join("|") +
    ")(?=$|[-_.@:\\s/])",
  "gi",
);

// A size like 8B, 1.1b, 1_6b (stablelm-2-zephyr-1_6b), 500M, 8x7B (mixture of experts), E4B (Gemma 3n's
// "effective" size). The B/M unit is required, so versions (v0.3, 3.1, R1), context lengths (4k, 128k) and
// quantizations (Q4_K_M, 4bit) are never read as sizes; a letter right before the number rules it out too,
// as A3B in Qwen3-30B-A3B is the active-parameter count, not the model's size.
const SIZE_TOKEN = /(?<![a-z0-9.])e?(?:(\d+)x)?(\d+(?:[._]\d+)?)([bm])(?![a-z0-9])/i;

/**
 * Total parameters of a Mixtral-style mixture of experts named "<experts>x<size>B". The experts share
 * attention and embeddings; only the feed-forward blocks (≈78% of a Mistral-style dense model) are
 * repeated. So 8x7B → 45.2B and 8x22B → 142B, within 3% of the published 46.7B and 141B, where a plain
 * experts × size (56B, 176B) would overstate them by a fifth. Totals, not active parameters (12.9B for
 * 8x7B): tiers stand for answer quality, and Mixtral 8x7B answers like a 70B dense model, not a 13B one.
 */
const MOE_REPEATED_SHARE = 0.78;

// Names that conventionally leave the size out; checked only when the name carries no size of its own.
const SIZE_ALIASES: Array<[RegExp, number]> = [
  [/phi-?[34](?:\.5)?[-:]mini/, 3.8e9],
  [/phi-?3(?:\.5)?[-:]small/, 7.4e9],
  [/phi-?3(?:\.5)?[-:]medium/, 14e9],
  [/phi-?4(?!\.?\d|[-:]mini)/, 14.7e9],
  [/phi-?2(?!\.?\d)/, 2.7e9],
  [/mistral-nemo/, 12.2e9],
];

// Families by the word in the name; the earliest in the name wins, so "DeepSeek-R1-Distill-Qwen" is deepseek.
const FAMILIES = [
  "tinyllama",
  "codellama",
  "llama",
  "mixtral",
  "mistral",
  "ministral",
  "codestral",
  "qwen",
  "qwq",
  "phi",
  "gemma",
  "deepseek",
  "gpt-oss",
  "command-r",
  "falcon",
  "starcoder",
  "smollm",
  "granite",
  "olmo",
  "internlm",
  "minicpm",
  "nemotron",
  "hermes",
  "vicuna",
  "yi",
  "glm",
  "exaone",
  "aya",
];

export function parseModelName(name: string): ModelInfo {
  const base = modelBaseName(name);
  const quantMatches = [...base.matchAll(QUANT_TOKEN)];
  // The last such token wins: names end with it ("…-Q4_K_M"), and LM Studio's "@q8_0" names the file loaded
  // even when the model's own name mentions another format ("…-fp16@q8_0").
  const quantToken = quantMatches.at(-1)?.[1] ?? "";
  return {
    parameterCount: parameterCount(base),
    quantization: normaliseQuantization(quantToken),
    family: family(base),
  };
}

/** The file or model name without folders, publisher, ".gguf" and "-00001-of-00003" shard suffixes. */
function modelBaseName(name: string): string {
  const last = name.trim().split(/[\\/]/).at(-1) ?? "";
  return last.replace(/\.(gguf|ggml|bin|safetensors)$/i, "").replace(/-\d{5}-of-\d{5}$/i, "");
}

function parameterCount(name: string): number {
  const match = SIZE_TOKEN.exec(name);
  if (match) {
    const [, experts, size, unit] = match as unknown as [string, string | undefined, string, string];
    const params = Number(size.replace("_", ".")) * (unit.toLowerCase() === "b" ? 1e9 : 1e6);
    const total = experts ? params * (1 - MOE_REPEATED_SHARE + MOE_REPEATED_SHARE * Number(experts)) : params;
    return Math.round(total);
  }
  const lower = name.toLowerCase();
  return SIZE_ALIASES.find(([pattern]) => pattern.test(lower))?.[1] ?? 0;
}

function normaliseQuantization(token: string): string {
  const upper = token
    .toUpperCase()
    .replace(/^(\d)[-_]?BIT$/, "$1BIT")
    .replace(/^GPTQ_/, "GPTQ-");
  if (upper === "FP16") return "F16";
  if (upper === "FP32") return "F32";
  return upper;
}

function family(name: string): string {
  const lower = name.toLowerCase();
  let best: { index: number; family: string } | undefined;
  for (const candidate of FAMILIES) {
    const index = lower.search(new RegExp(`(?<![a-z])${candidate.replace("-", "-?")}`));
    if (index < 0) continue;
    if (!best || index < best.index) best = { index, family: candidate };
  }
  if (best) return best.family;
  // Unknown family: the name's first word without its version digits ("falcon3-7b" → "falcon").
  return lower.split(/[-_.:@\s]/)[0]?.replace(/[\d.]+$/, "") ?? "";
}

// Approximate bits per weight: llama.cpp's block sizes for its types (Q4_0 = 4-bit values + a 16-bit scale
// per 32 = 4.5) and the figures commonly quoted for its _S/_M/_L mixes on 7-8B models; the float formats
// exactly; MXFP4 stores 4-bit values with one 8-bit scale per 32; AWQ / GPTQ 4-bit carry a 16-bit scale per
// group of 128; MLX n-bit a 16-bit scale and bias per 64. Whole files run a little larger, as embeddings
// and the output layer are usually kept at higher precision.
const BITS_PER_WEIGHT: Record<string, number> = {
  IQ1_S: 1.56,
  IQ1_M: 1.75,
  TQ1_0: 1.69,
  TQ2_0: 2.06,
  IQ2_XXS: 2.06,
  IQ2_XS: 2.31,
  IQ2_S: 2.5,
  IQ2_M: 2.7,
  Q2_K_S: 2.5,
  Q2_K: 2.63,
  IQ3_XXS: 3.06,
  IQ3_XS: 3.3,
  IQ3_S: 3.44,
  IQ3_M: 3.66,
  Q3_K_S: 3.44,
  Q3_K_M: 3.91,
  Q3_K_L: 4.27,
  IQ4_XS: 4.25,
  IQ4_NL: 4.5,
  Q4_0: 4.5,
  Q4_0_4_4: 4.5,
  Q4_0_4_8: 4.5,
  Q4_0_8_8: 4.5,
  Q4_1: 5.0,
  Q4_K_S: 4.58,
  Q4_K_M: 4.85,
  Q5_0: 5.5,
  Q5_1: 6.0,
  Q5_K_S: 5.54,
  Q5_K_M: 5.69,
  Q6_K: 6.56,
  Q8_0: 8.5,
  Q8_1: 9.0,
  MXFP4: 4.25,
  FP8: 8,
  F16: 16,
  BF16: 16,
  F32: 32,
  AWQ: 4.25,
  "GPTQ-INT4": 4.25,
  "GPTQ-INT8": 8.25,
  "2BIT": 2.5,
  "3BIT": 3.5,
  "4BIT": 4.5,
  "5BIT": 5.5,
  "6BIT": 6.5,
  "8BIT": 8.5,
};

/** Approximate bits per weight of a quantization (any case, FP16 = F16); undefined when unknown. */
export function bitsPerWeight(quantization: string): number | undefined {
  return BITS_PER_WEIGHT[normaliseQuantization(quantization.trim())];
}
