// Answers a classify assign: asks the node's own backend how hard a prompt is, with the compact node prompt, the
// request cut to what the model's context holds, and reads the answer forgivingly (JSON, a bare label, a label in
// a sentence, in English or translated), since small local models rarely keep to a format.
import {
  CLASSIFY_NODE_PROMPT,
  estimateTokens,
  parseDifficultyAnswer,
  type DifficultyLabel,
} from "../common/classify-prompt.ts";
import { openText, type SessionKeys } from "../common/crypto/envelope.ts";
import type { Logger } from "pino";
import { difficultyToProto } from "../common/vocabulary.ts";
import { Difficulty } from "../gen/iris/v1/common_pb.ts";
import type { ClassifyAssign } from "../gen/iris/v1/node_pb.ts";
import type { Backend } from "./backends/backend.ts";
import type { OutgoingMessage } from "./outgoing-message.ts";

/** Enough for `{"difficulty":"ADVANCED"}` in any tokenizer; a chattier answer is cut off instead of running on. */
const MAX_TOKENS = 24;
/** Stop reading a model that ignores max_tokens long before it costs anything. */
const MAX_ANSWER_CHARS = 200;
/** What a chat template and role labels add around the two messages, generously. */
const TEMPLATE_TOKENS = 32;

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

/** The middle of a fenced request cut out so that `keep` characters remain; both fences and both ends stay. */
function shorten(prompt: string, keep: number): string {
  const head = Math.floor(keep * 0.6);
  return `${prompt.slice(0, head)}\n[…]\n${prompt.slice(prompt.length - (keep - head))}`;
}

/** Each backend's context length, asked once (describe() may be an HTTP round trip); 0 when unknown. */
const contexts = new WeakMap<Backend, Promise<number>>();

function contextOf(backend: Backend): Promise<number> {
  let context = contexts.get(backend);
  if (!context) {
    context = backend.describe().then(
      (d) => d.contextLength,
      () => {
        contexts.delete(backend); // ask again next time
        return 0;
      },
    );
    contexts.set(backend, context);
  }
  return context;
}

/**
 * The request as it fits the backend's context next to the node prompt and the answer. A clear fit by the rough
 * estimate costs nothing more; a close one is counted with the model's own tokenizer where the backend has one.
 * A context of unknown size leaves the request whole.
 */
export async function fitToContext(backend: Backend, prompt: string): Promise<string> {
  const contextLength = await contextOf(backend);
  if (!contextLength) return prompt;
  const estimate = (text: string) => Promise.resolve(estimateTokens(text));
  if (
    2 * (estimateTokens(CLASSIFY_NODE_PROMPT) + estimateTokens(prompt)) + MAX_TOKENS + TEMPLATE_TOKENS <=
    contextLength
  )
    return prompt;
  const count = backend.countTokens
    ? (text: string) => backend.countTokens!(text).catch(() => estimateTokens(text))
    : estimate;
  const room = contextLength - (await count(CLASSIFY_NODE_PROMPT)) - MAX_TOKENS - TEMPLATE_TOKENS;
  let tokens = await count(prompt);
  if (tokens <= room) return prompt;
  let keep = Math.floor((prompt.length * Math.max(room, 16)) / tokens);
  // a few rounds: tokens per character differ between the ends and the whole
  for (let round = 0; round < 6; round++) {
    const cut = shorten(prompt, keep);
    tokens = await count(cut);
    if (tokens <= room) return cut;
    keep = Math.floor(keep * 0.8);
  }
  return shorten(prompt, keep);
}

/**
 * The difficulty the backend judges `prompt` (ClassifyAssign.sealed_prompt: the conversation already fenced by the
 * coordinator) to be. Rejects when the answer names no difficulty (or several, none first), when the backend fails,
 * or when `signal` aborts (the assign's deadline passed).
 */
export async function classifyWithBackend(
  backend: Backend,
  prompt: string,
  signal: AbortSignal,
): Promise<DifficultyLabel> {
  const pieces: string[] = [];
  let length = 0;
  const stream = backend.generate({
    messages: [
      { role: "system", content: CLASSIFY_NODE_PROMPT },
      { role: "user", content: await fitToContext(backend, prompt) },
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
  return parseDifficultyAnswer(pieces.join(""));
}

/**
 * Answers `assign` on the node's stream (`send`): the difficulty the backend judges, or an explicit "no answer"
 * (DIFFICULTY_UNSPECIFIED) when it could not judge in time, which spares the request the rest of the deadline. A
 * prompt that does not open is ignored (logged): it was not sealed for this connection.
 */
export function answerClassifyAssign(
  assign: ClassifyAssign,
  keys: SessionKeys | undefined,
  backend: Backend,
  send: (message: OutgoingMessage) => void,
  logger: Logger,
): void {
  // the coordinator's deadline is in its clock; a short floor keeps a skewed clock from refusing at once
  const budget = Math.max(200, Number(assign.deadlineUnixMs) - Date.now());
  const prompt = keys && openClassifyPrompt(keys, assign);
  if (prompt === undefined) {
    logger.warn({ classifyId: assign.classifyId }, "a classify assign whose prompt does not open; ignored");
    return;
  }
  const deadline = AbortSignal.timeout(budget);
  const answer = (difficulty: Difficulty) =>
    send({ case: "classifyResult", value: { classifyId: assign.classifyId, difficulty } });
  classifyWithBackend(backend, prompt, deadline).then(
    (label) => answer(difficultyToProto[label]),
    (err: unknown) => {
      logger.warn({ err, classifyId: assign.classifyId }, "could not classify; the coordinator falls through");
      if (!deadline.aborted) answer(Difficulty.UNSPECIFIED);
    },
  );
}
