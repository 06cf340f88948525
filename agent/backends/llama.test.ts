// The embedded backend against real llama.cpp on the generated tiny model: streaming, usage, abort, queueing, prompts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type Llama, type LlamaModel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_GGUF_SHAPE, TINY_GGUF_WORDS, writeTinyGguf } from "../../test/fixtures/tiny-gguf.ts";
import {
  BackendError,
  type Backend,
  type GeneratedPiece,
  type GenerateRequest,
  type GenerateResult,
} from "./backend.ts";
import { renderPrompt } from "./llama-prompt.ts";
import { createLlamaBackend, quantizationName, tensorParameterCount } from "./llama.ts";
import { measureTokenizerRates } from "../tokenizer-rates.ts";

const CONTEXT = 1024;
let dir: string;
let modelPath: string;
let backend: Backend;
let single: Backend;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "iris-llama-"));
  modelPath = join(dir, "tiny-test-Q4_K_M.gguf");
  writeTinyGguf(modelPath, { name: "Tiny Llama", contextLength: 2048 });
  [backend, single] = await Promise.all([
    createLlamaBackend({ modelPath, threads: 1, contextSize: CONTEXT, maxConcurrent: 2 }),
    createLlamaBackend({ modelPath, threads: 1, contextSize: CONTEXT, maxConcurrent: 1 }),
  ]);
});

afterAll(async () => {
  await backend?.close();
  await single?.close();
  rmSync(dir, { recursive: true, force: true });
});

function request(overrides: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    messages: [{ role: "user", content: "Say something." }],
    maxTokens: 32,
    temperature: 0,
    signal: new AbortController().signal,
    ...overrides,
  };
}

async function collect(
  stream: AsyncGenerator<GeneratedPiece, GenerateResult, void>,
  onPiece?: (index: number) => void,
) {
  const pieces: string[] = [];
  let tokens = 0;
  for (;;) {
    const next = await stream.next();
    if (next.done) return { pieces, text: pieces.join(""), tokens, result: next.value };
    pieces.push(next.value.text);
    tokens += next.value.tokens;
    onPiece?.(pieces.length);
  }
}

describe("createLlamaBackend", () => {
  it("describes the model from its GGUF metadata", async () => {
    expect(backend.kind).toBe("embedded");
    const { embedding, layers, heads, kvHeads, feedForward } = TINY_GGUF_SHAPE;
    const vocabulary = 3 + 256 + 1 + TINY_GGUF_WORDS.length;
    const perLayer =
      2 * embedding +
      2 * embedding * embedding +
      2 * embedding * (embedding / heads) * kvHeads +
      3 * embedding * feedForward;
    expect(await backend.describe()).toEqual({
      name: "Tiny Llama",
      parameterCount: 2 * vocabulary * embedding + embedding + layers * perLayer,
      quantization: "F32", // from general.file_type, which beats the Q4_K_M in the file name
      contextLength: CONTEXT,
    });
  });

  it("counts tokens with the model's tokenizer, and its rates are measured from that", async () => {
    const tokens = await backend.countTokens!("the word of a node");
    expect(tokens).toBeGreaterThan(0);
    // more text is more tokens: a real tokenizer, not a length formula the test could mirror
    expect(await backend.countTokens!("the word of a node ".repeat(10))).toBeGreaterThan(tokens * 5);
    const rates = await measureTokenizerRates(backend);
    expect(rates).toBeDefined();
    for (const rate of [rates!.asciiCharsPerToken, rates!.otherCharsPerToken]) {
      expect(rate).toBeGreaterThanOrEqual(0.1);
      expect(rate).toBeLessThanOrEqual(64);
    }
    // a backend without a tokenizer has no rates: the coordinator estimates
    const withoutTokenizer: Backend = {
      kind: "http",
      describe: () => backend.describe(),
      generate: (r) => backend.generate(r),
      close: async () => {},
    };
    expect(await measureTokenizerRates(withoutTokenizer)).toBeUndefined();
  });

  it("streams several pieces and counts prompt and completion tokens exactly", async () => {
    const messages = [
      { role: "system" as const, content: "Be brief." },
      { role: "user" as const, content: "Name a word." },
    ];
    const { pieces, text, result } = await collect(backend.generate(request({ messages, maxTokens: 24 })));
    expect(pieces.length).toBeGreaterThan(5);
    // The tiny model never emits EOS, so it runs to maxTokens; one word token per piece.
    expect(result).toEqual({ promptTokens: expect.any(Number), completionTokens: 24, finishReason: "length" });
    const words = text.split(" ");
    expect(words).toHaveLength(24);
    for (const word of words) expect(TINY_GGUF_WORDS).toContain(word);
    // The documented plain format, tokenized independently (+1 for BOS).
    const model = await loadVocabulary();
    expect(result.promptTokens).toBe(
      model.tokenize("System: Be brief.\nUser: Name a word.\nAssistant:", false, "trimLeadingSpace").length + 1,
    );
  });

  it("is deterministic at temperature 0 and for a fixed seed", async () => {
    const greedy = await collect(backend.generate(request()));
    expect((await collect(backend.generate(request()))).text).toBe(greedy.text);
    const seeded = (seed: number) => collect(backend.generate(request({ temperature: 1.2, seed, maxTokens: 48 })));
    const [a, b, c] = await Promise.all([seeded(11), seeded(11), seeded(12)]);
    expect(a.text).toBe(b.text);
    expect(c.text).not.toBe(a.text);
  });

  it("stops promptly with finishReason cancelled when the signal aborts", async () => {
    const controller = new AbortController();
    const { pieces, result } = await collect(
      backend.generate(request({ maxTokens: 100_000, signal: controller.signal })),
      (count) => count === 3 && controller.abort(),
    );
    expect(result.finishReason).toBe("cancelled");
    expect(pieces).toHaveLength(3);
    // promptly: a few tokens past the abort, not the 100,000 asked for (no clock: that is bench/'s business)
    expect(result.completionTokens).toBeLessThan(50);

    const already = AbortSignal.abort();
    expect((await collect(backend.generate(request({ signal: already })))).result).toMatchObject({
      completionTokens: 0,
      finishReason: "cancelled",
    });
  });

  it("runs two generations at once on two sequences", async () => {
    const [a, b] = await Promise.all([
      collect(backend.generate(request({ maxTokens: 40 }))),
      collect(backend.generate(request({ maxTokens: 60, messages: [{ role: "user", content: "Other." }] }))),
    ]);
    expect(a.result).toMatchObject({ completionTokens: 40, finishReason: "length" });
    expect(b.result).toMatchObject({ completionTokens: 60, finishReason: "length" });
  });

  it("queues beyond maxConcurrent: the second request starts when the first is done", async () => {
    const events: string[] = [];
    await Promise.all([
      collect(single.generate(request({ maxTokens: 80 })), (n) => n === 1 && events.push("first:start")).then(() =>
        events.push("first:end"),
      ),
      collect(single.generate(request({ maxTokens: 5 })), (n) => n === 1 && events.push("second:start")),
    ]);
    expect(events).toEqual(["first:start", "first:end", "second:start"]);
  });

  it("a waiting request that is aborted leaves the queue; a consumer that breaks frees its sequence", async () => {
    const waiting = new AbortController();
    const first = collect(single.generate(request({ maxTokens: 200 })));
    const second = collect(single.generate(request({ signal: waiting.signal })));
    waiting.abort();
    expect((await second).result).toMatchObject({ completionTokens: 0, finishReason: "cancelled" });
    expect((await first).result.completionTokens).toBe(200);

    for await (const piece of single.generate(request({ maxTokens: 500 }))) {
      expect(piece.text).not.toBe("");
      break;
    }
    const after = await collect(single.generate(request({ maxTokens: 3 })));
    expect(after.result).toMatchObject({ completionTokens: 3, finishReason: "length" });
  });

  it("continues an assistant prefix right after its last character", async () => {
    const { pieces, result } = await collect(
      backend.generate(request({ assistantPrefix: "The answer is", maxTokens: 4 })),
    );
    expect(result.completionTokens).toBe(4);
    // A continuation after a word keeps its space; a fresh answer has none in front.
    expect(pieces[0]).toMatch(/^ \w/);
    const fresh = await collect(backend.generate(request({ maxTokens: 4 })));
    expect(fresh.pieces[0]).toMatch(/^\w/);
  });

  it("ends with finishReason length at the end of the context window", async () => {
    const { result } = await collect(backend.generate(request({ maxTokens: 5000 })));
    expect(result.finishReason).toBe("length");
    expect(result.promptTokens + result.completionTokens).toBe(CONTEXT);
  });

  it("close() ends generations in flight as cancelled and refuses new ones", async () => {
    const closing = await createLlamaBackend({ modelPath, threads: 1, contextSize: CONTEXT });
    let closed: Promise<void> | undefined;
    const { result } = await collect(closing.generate(request({ maxTokens: 100_000 })), (count) => {
      if (count === 2) closed = closing.close();
    });
    await closed;
    expect(result.finishReason).toBe("cancelled");
    await expect(collect(closing.generate(request()))).rejects.toMatchObject({ reason: "backend_failed" });
  });

  it("refuses a prompt longer than the context window", async () => {
    const long = request({ messages: [{ role: "user", content: "word ".repeat(CONTEXT) }] });
    await expect(collect(backend.generate(long))).rejects.toMatchObject({
      name: "BackendError",
      reason: "context_too_long",
    });
    await expect(collect(backend.generate(long))).rejects.toBeInstanceOf(BackendError);
  });
});

describe("renderPrompt", () => {
  it("uses the plain format without a chat template, ending in the assistant prefix", async () => {
    const model = await loadVocabulary();
    const prompt = renderPrompt(
      model,
      [
        { role: "system", content: "S" },
        { role: "user", content: "U" },
        { role: "assistant", content: "A" },
        { role: "user", content: "U2" },
      ],
      "Sure,",
    );
    expect(prompt.text).toBe("System: S\nUser: U\nAssistant: A\nUser: U2\nAssistant: Sure,");
    expect(model.detokenize(prompt.tokens)).toBe(prompt.text);
  });

  it("uses the GGUF chat template when there is one, leaving the assistant turn open", async () => {
    const templatePath = join(dir, "templated.gguf");
    writeTinyGguf(templatePath, {
      chatTemplate:
        "{{ bos_token }}{% for message in messages %}[{{ message['role'] }}]{{ message['content'] }}[end]{% endfor %}" +
        "{% if add_generation_prompt %}[assistant]{% endif %}",
    });
    const model = await loadVocabulary(templatePath);
    const prompt = renderPrompt(model, [{ role: "user", content: "Hi" }], "Hello");
    expect(prompt.text).toContain("[user]Hi[end]");
    expect(prompt.text.endsWith("[assistant]Hello")).toBe(true);
    // The template's BOS is dropped because LlamaCompletion prepends one itself.
    expect(prompt.tokens).not.toContain(model.tokens.bos);
    expect(prompt.stopTriggers.map(String)).toContain("[end]");
  });
});

describe("GGUF description helpers", () => {
  it.each([
    [0, "F32"],
    [1, "F16"],
    [7, "Q8_0"],
    [15, "Q4_K_M"],
    [32, "BF16"],
    [undefined, ""],
    [9999, ""],
  ])("quantizationName(%s) = %s", (fileType, expected) => {
    expect(quantizationName(fileType)).toBe(expected);
  });

  it("counts parameters from tensor shapes, including bigint dimensions", () => {
    expect(tensorParameterCount([{ dimensions: [4096, 32000] }, { dimensions: [4096n] }])).toBe(4096 * 32000 + 4096);
    expect(tensorParameterCount(undefined)).toBe(0);
  });
});

const vocabularies = new Map<string, Promise<LlamaModel>>();
let vocabularyLlama: Promise<Llama> | undefined;
afterAll(async () => {
  for (const model of vocabularies.values()) await (await model).dispose();
  await (await vocabularyLlama)?.dispose();
});

/** The model's tokenizer only, loaded independently of the backend under test. */
function loadVocabulary(path = modelPath): Promise<LlamaModel> {
  vocabularyLlama ??= getLlama({ gpu: false, build: "never", maxThreads: 1 });
  let model = vocabularies.get(path);
  if (!model) {
    model = vocabularyLlama.then((llama) => llama.loadModel({ modelPath: path, vocabOnly: true }));
    vocabularies.set(path, model);
  }
  return model;
}
