// Model-name parsing: sizes, quantizations and families from GGUF files, LM Studio ids and Ollama tags.
import { describe, expect, it } from "vitest";
import { bitsPerWeight, parseModelName } from "./model-name.ts";

describe("parseModelName", () => {
  it.each<[string, number, string, string]>([
    // name, parameters, quantization, family
    ["Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", 8e9, "Q4_K_M", "llama"],
    ["qwen2.5-14b-instruct", 14e9, "", "qwen"],
    ["mistral-7b-instruct-v0.3@q5_k_m", 7e9, "Q5_K_M", "mistral"],
    ["gemma-2-2b-it-Q8_0.gguf", 2e9, "Q8_0", "gemma"],
    ["Llama-3.2-1B-Instruct-F16.gguf", 1e9, "F16", "llama"],
    ["llama3:70b-instruct-q4_0", 70e9, "Q4_0", "llama"],
    ["hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M", 3e9, "Q4_K_M", "llama"],
    ["DeepSeek-R1-Distill-Qwen-32B-IQ4_XS.gguf", 32e9, "IQ4_XS", "deepseek"],
    ["tinyllama-1.1b-chat-v1.0.Q2_K.gguf", 1.1e9, "Q2_K", "tinyllama"],
    ["gpt-oss-20b-MXFP4.gguf", 20e9, "MXFP4", "gpt-oss"],
    ["Qwen2.5-0.5B-Instruct-bf16.gguf", 0.5e9, "BF16", "qwen"],
    ["SmolLM2-360M-Instruct-fp16.gguf", 360e6, "F16", "smollm"],
    ["qwen2.5:500m-f32", 500e6, "F32", "qwen"],
    ["llama3.1:8b-instruct-fp16", 8e9, "F16", "llama"],
    ["Llama-3.3-70B-Instruct-FP32.gguf", 70e9, "F32", "llama"],
    // Paths, publishers, shards and LM Studio ids are stripped to the file's own name.
    ["lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF/Meta-Llama-3.1-8B-Instruct-Q6_K.gguf", 8e9, "Q6_K", "llama"],
    ["/models/Qwen2.5-72B-Instruct-Q4_K_M-00001-of-00002.gguf", 72e9, "Q4_K_M", "qwen"],
    ["C:\\models\\Mistral-Small-24B-Instruct-2501-Q3_K_M.gguf", 24e9, "Q3_K_M", "mistral"],
    // More llama.cpp quantizations.
    ["Meta-Llama-3-70B-Instruct-IQ2_XXS.gguf", 70e9, "IQ2_XXS", "llama"],
    ["Llama-3.1-405B-Instruct-IQ1_M.gguf", 405e9, "IQ1_M", "llama"],
    ["Qwen3-30B-A3B-UD-Q4_K_XL.gguf", 30e9, "Q4_K_XL", "qwen"],
    ["granite-3.1-8b-instruct-Q4_0_4_8.gguf", 8e9, "Q4_0_4_8", "granite"],
    ["mistral-7b-instruct-v0.2.Q3_K_L.gguf", 7e9, "Q3_K_L", "mistral"],
    // LM Studio's "@quant" names the file actually loaded, after any format in the model's own name.
    ["hermes-2-pro-llama-3-8b-fp16@q8_0", 8e9, "Q8_0", "hermes"],
    ["Phi-3.5-mini-instruct-IQ4_NL.gguf", 3.8e9, "IQ4_NL", "phi"],
    ["bitnet-b1.58-2B-4T-TQ1_0.gguf", 2e9, "TQ1_0", "bitnet"],
    ["codellama-13b-instruct.Q5_K_S.gguf", 13e9, "Q5_K_S", "codellama"],
    // vLLM and MLX naming.
    ["Meta-Llama-3.1-70B-Instruct-FP8", 70e9, "FP8", "llama"],
    ["Qwen2.5-32B-Instruct-AWQ", 32e9, "AWQ", "qwen"],
    ["Qwen2.5-7B-Instruct-GPTQ-Int4", 7e9, "GPTQ-INT4", "qwen"],
    ["mlx-community/Mistral-Nemo-Instruct-2407-4bit", 12.2e9, "4BIT", "mistral"],
    ["Qwen2.5-Coder-14B-Instruct-8bit", 14e9, "8BIT", "qwen"],
    // Versions and context lengths are not sizes; a name without a size is 0 unless an alias knows it.
    ["phi-3-mini-4k-instruct", 3.8e9, "", "phi"],
    ["Phi-3-medium-128k-instruct-Q4_K_M.gguf", 14e9, "Q4_K_M", "phi"],
    ["phi3:mini", 3.8e9, "", "phi"],
    ["phi-4-Q4_K_M.gguf", 14.7e9, "Q4_K_M", "phi"],
    ["phi-2.Q8_0.gguf", 2.7e9, "Q8_0", "phi"],
    ["llama3:latest", 0, "", "llama"],
    ["Mistral-7B-Instruct-v0.3", 7e9, "", "mistral"],
    ["openchat-3.5-0106", 0, "", "openchat"],
    ["deepseek-r1:latest", 0, "", "deepseek"],
    ["gemma-3n-E4B-it-Q4_K_M.gguf", 4e9, "Q4_K_M", "gemma"],
    // Word boundaries: "dolphin" is not phi, "Qwen2" is not a Q2 quantization, "q4" inside a word is nothing.
    ["dolphin-2.9-llama3-8b-q4_k_m", 8e9, "Q4_K_M", "llama"],
    ["Qwen2-7B-Instruct", 7e9, "", "qwen"],
    ["stablelm-2-zephyr-1_6b-Q4_K_M.gguf", 1.6e9, "Q4_K_M", "stablelm"],
    ["internlm2_5-7b-chat-q8_0.gguf", 7e9, "Q8_0", "internlm"],
    // "A2.7B" is the active-parameter count of a mixture of experts, not its size: unknown.
    ["Qwen1.5-MoE-A2.7B-Chat", 0, "", "qwen"],
    ["", 0, "", ""],
  ])("%s", (name, parameterCount, quantization, family) => {
    expect(parseModelName(name)).toEqual({ parameterCount, quantization, family });
  });

  it.each<[string, number]>([
    // Mixture of experts: experts share attention and embeddings, so the total is below experts × size.
    ["mixtral-8x7b", 45.22e9],
    ["Mixtral-8x7B-Instruct-v0.1.Q4_K_M.gguf", 45.22e9],
    ["mixtral:8x22b-instruct", 142.12e9],
    ["Beyonder-4x7B-v3-Q5_K_M.gguf", 23.38e9],
  ])("counts the mixture of experts %s as about the published total", (name, total) => {
    const { parameterCount } = parseModelName(name);
    expect(parameterCount).toBeCloseTo(total, -7);
    const match = /(\d+)x(\d+)b/i.exec(name)!;
    expect(parameterCount).toBeLessThan(Number(match[1]) * Number(match[2]) * 1e9);
  });

  it("keeps the total, not the active count, for Qwen3's A3B-style names", () => {
    expect(parseModelName("Qwen3-235B-A22B-Instruct-2507-Q2_K.gguf").parameterCount).toBe(235e9);
  });
});

describe("bitsPerWeight", () => {
  it.each<[string, number]>([
    ["Q2_K", 2.63],
    ["Q3_K_S", 3.44],
    ["Q3_K_M", 3.91],
    ["Q4_0", 4.5],
    ["Q4_K_M", 4.85],
    ["Q5_K_M", 5.69],
    ["Q6_K", 6.56],
    ["Q8_0", 8.5],
    ["IQ2_XXS", 2.06],
    ["IQ3_M", 3.66],
    ["IQ4_XS", 4.25],
    ["MXFP4", 4.25],
    ["F16", 16],
    ["BF16", 16],
    ["F32", 32],
    ["fp16", 16],
    ["q4_k_m", 4.85],
    ["4bit", 4.5],
    ["gptq-int4", 4.25],
  ])("%s ≈ %s bits", (quantization, bits) => {
    expect(bitsPerWeight(quantization)).toBe(bits);
  });

  it.each(["", "Q9_K", "GGUF", "Q4_K_XL", "int4"])("is undefined for %j", (quantization) => {
    expect(bitsPerWeight(quantization)).toBeUndefined();
  });

  it("grows with the quantization level, so it can rank quantizations", () => {
    const ladder = ["IQ1_S", "IQ2_XXS", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16", "F32"];
    const bits = ladder.map((q) => bitsPerWeight(q)!);
    expect(bits).toEqual([...bits].sort((a, b) => a - b));
    expect(new Set(bits).size).toBe(ladder.length);
  });

  it("knows the common llama.cpp quantizations exactly as the name parser spells them", () => {
    for (const q of ["Q4_K_M", "IQ4_XS", "Q8_0", "F16", "BF16", "MXFP4", "TQ1_0", "IQ2_M", "Q4_0_4_4"]) {
      const parsed = parseModelName(`model-7B-${q}.gguf`).quantization;
      expect(parsed).toBe(q);
      expect(bitsPerWeight(parsed)).toBeGreaterThan(1);
    }
  });
});
