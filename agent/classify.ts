// Answers a classify assign: asks the node's own backend how hard a prompt is, with the same prompt the
// coordinator sends OpenRouter, and reads the answer strictly (or as one bare word, for models without JSON mode).
import { CLASSIFY_SYSTEM_PROMPT, parseDifficultyLoose, type DifficultyLabel } from "../common/classify-prompt.ts";
import { openText, type SessionKeys } from "../common/crypto/envelope.ts";
import type { ClassifyAssign } from "../gen/iris/v1/node_pb.ts";
import type { Backend } from "./backends/backend.ts";

/** Enough for `{"difficulty":"ADVANCED"}` in any tokenizer; a chattier answer fails instead of running on. */
const MAX_TOKENS = 24;
/** Stop reading a model that ignores max_tokens long before it costs anything. */
const MAX_ANSWER_CHARS = 200;

/**
 * The prompt of a classify assign, opened with the connection's keys; undefined when it is missing or does not
 * open (tampered, or sealed for another classification).
 */
export function openClassifyPrompt(keys: SessionKeys, assign: ClassifyAssign): string | undefined {
  if (!assign.sealedPrompt) return undefined;
  try {
    return openText(keys.toNode, assign.sealedPrompt, { taskId: assign.classifyId, sequence: 0, kind: "classify" });
  } catch {
    return undefined; // an EnvelopeError, or an id no AAD can hold: either way not a prompt for this node
  }
}

/**
 * The difficulty the backend judges `prompt` (ClassifyAssign.sealed_prompt: the conversation already fenced by the
 * coordinator) to be. Rejects when the answer is neither the JSON object nor a bare label, when the backend
 * fails, or when `signal` aborts (the assign's deadline passed).
 */
export async function classifyWithBackend(backend: Backend, prompt: string, signal: AbortSignal): Promise<DifficultyLabel> {
  const pieces: string[] = [];
  let length = 0;
  const stream = backend.generate({
    messages: [
      { role: "system", content: CLASSIFY_SYSTEM_PROMPT },
      { role: "user", content: prompt },
    ],
    maxTokens: MAX_TOKENS,
    temperature: 0,
    seed: 0,
    signal,
  });
  for await (const { text } of stream) {
    pieces.push(text);
    length += text.length;
    if (length > MAX_ANSWER_CHARS) break; // leaving the loop closes the generator, which stops the backend
  }
  signal.throwIfAborted();
  return parseDifficultyLoose(pieces.join(""));
}
