// The OpenRouter link: asks an OpenAI-compatible chat endpoint (OpenRouter by default) for the difficulty as
// strict JSON. One request per classification, no retries: the chain's budget is short and the next link waits.
import {
  CLASSIFY_SYSTEM_PROMPT,
  parseDifficultyJson,
  renderForClassification,
} from "../../../common/classify-prompt.ts";
import type { Classifier } from "./classifier.ts";

export interface OpenRouterClassifierOptions {
  /** OPENROUTER_API_KEY; sent only in the Authorization header, never logged or put in an error. */
  apiKey: string;
  /** OPENROUTER_URL: the API root, e.g. https://openrouter.ai/api/v1. */
  url: string;
  /** OPENROUTER_MODEL, e.g. openai/gpt-4o-mini. */
  model: string;
  /** Room for `{"difficulty":"ADVANCED"}` (about 8 tokens) and nothing much more. */
  maxTokens?: number;
  fetch?: typeof fetch;
}

/** What OpenRouter (and OpenAI) put in a chat completion, as far as this link reads it. */
interface ChatCompletion {
  choices?: { message?: { content?: unknown } }[];
  error?: { code?: unknown; message?: unknown };
}

const ERROR_DETAIL_CHARS = 200;

export function createOpenRouterClassifier(options: OpenRouterClassifierOptions): Classifier {
  const endpoint = `${options.url.replace(/\/+$/, "")}/chat/completions`;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const headers = {
    Authorization: `Bearer ${options.apiKey}`,
    "Content-Type": "application/json",
    // OpenRouter's optional app attribution; other OpenAI-compatible servers ignore it
    "X-Title": "Iris",
  };
  return {
    async classify(input) {
      const body = {
        model: options.model,
        messages: [
          { role: "system", content: CLASSIFY_SYSTEM_PROMPT },
          { role: "user", content: renderForClassification(input.messages) },
        ],
        temperature: 0,
        max_tokens: options.maxTokens ?? 20,
        response_format: { type: "json_object" },
        stream: false,
      };
      let response: Response;
      try {
        response = await fetchImpl(endpoint, {
          method: "POST",
          headers,
          body: JSON.stringify(body),
          signal: input.signal,
        });
      } catch (error) {
        throw new Error(`openrouter: request to ${endpoint} failed: ${describe(error)}`);
      }
      const text = await response.text().catch((error: unknown) => {
        throw new Error(`openrouter: reading the answer failed: ${describe(error)}`);
      });
      if (!response.ok) throw new Error(`openrouter: HTTP ${response.status}${errorDetail(text)}`);
      let completion: ChatCompletion;
      try {
        completion = JSON.parse(text) as ChatCompletion;
      } catch {
        throw new Error(`openrouter: HTTP ${response.status} with a body that is not JSON`);
      }
      // OpenRouter reports errors that happen once generation has started inside a 200 answer
      if (completion.error) throw new Error(`openrouter: error in a 200 answer${errorDetail(text)}`);
      const content = completion.choices?.[0]?.message?.content;
      if (typeof content !== "string") throw new Error("openrouter: the answer has no choices[0].message.content");
      return { difficulty: parseDifficultyJson(content), classifier: "openrouter" };
    },
  };
}

/** The server's own error message, shortened; OpenRouter and OpenAI put it in `error.message`. */
function errorDetail(body: string): string {
  let message: unknown;
  try {
    const parsed = JSON.parse(body) as ChatCompletion;
    message = parsed.error?.message;
  } catch {
    return "";
  }
  if (typeof message !== "string" || message === "") return "";
  return `: ${message.length > ERROR_DETAIL_CHARS ? `${message.slice(0, ERROR_DETAIL_CHARS)}…` : message}`;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.name === "AbortError" ? "aborted" : error.message;
  return String(error);
}
