// Reading an OpenAI-compatible server's answers (openai-compatible.ts sends the requests): stream events into text
// pieces, finish reason and usage, and the server's errors into the most specific BackendError.
import type { EventSourceMessage } from "eventsource-parser";
import { BackendError } from "./backend.ts";
import type { HttpAnswer } from "./http-client.ts";

// Messages that mean "the prompt does not fit" in LM Studio, llama.cpp server, vLLM and OpenAI wording.
const CONTEXT_OVERFLOW = new RegExp(
  "context (length|size|window)|maximum context|exceeds? the (available )?context|context the " +
    "overflows|too many tokens|prompt is too long",
  "i",
);

/** What one answer's stream said so far. */
export interface StreamState {
  contentDeltas: number;
  finishReason: string | undefined;
  usage: { prompt_tokens?: number; completion_tokens?: number } | undefined;
  done: boolean;
}

export const newStreamState = (): StreamState => ({
  contentDeltas: 0,
  finishReason: undefined,
  usage: undefined,
  done: false,
});

/**
 * An OpenAI-compatible server's JSON as the agent reads it: the fields it looks at, none checked (JSON.parse's value
 * as the server sent it; each read below copes with a field that is missing or of another kind).
 */
export interface ServerJson {
  error?: string | { message?: string; code?: string; type?: string } | null;
  message?: string;
  detail?: string;
  usage?: StreamState["usage"];
  choices?: { finish_reason?: string | null; delta?: { content?: unknown }; message?: { content?: unknown } }[];
}

/** The server the answers come from (its API root) and the model asked for: error messages name both. */
export interface AnswerSource {
  baseUrl: string;
  model: string;
}

/** One SSE event: returns the text piece it carries, if any, and records finish reason, usage and the end. */
export function readEvent(
  event: EventSourceMessage,
  state: StreamState,
  source: AnswerSource,
  field: "delta" | "message" = "delta",
): string | undefined {
  if (event.data === "[DONE]") {
    state.done = true;
    return undefined;
  }
  let chunk: ServerJson | null;
  try {
    chunk = JSON.parse(event.data) as ServerJson | null;
  } catch (error) {
    throw new BackendError("backend_failed", `unreadable stream event: ${event.data.slice(0, 200)}`, {
      cause: error,
    });
  }
  // Errors after the 200 header arrive inside the stream.
  if (event.event === "error" || chunk?.error !== undefined) throw serverError(source, 200, chunk, event.data);
  if (chunk?.usage) state.usage = chunk.usage;
  if (field === "message") state.done = true;
  const choice = chunk?.choices?.[0];
  if (choice?.finish_reason) state.finishReason = choice.finish_reason;
  const content = choice?.[field]?.content;
  if (typeof content !== "string" || content === "") return undefined;
  state.contentDeltas++;
  return content;
}

/** The deltas of one read of the stream, joined, with what ended it early if anything did. */
export interface ReadPieces {
  text: string;
  tokens: number;
  /** A delta past the budget: the server ignored max_tokens, and the answer ends here. */
  over: boolean;
  /** An error event (or an unreadable one) among them; the deltas before it still go on first. */
  failure?: unknown;
}

/** Takes the events parsed from one read: one piece per read, not per delta (a read often holds many). */
export function piecesOfRead(
  events: EventSourceMessage[],
  state: StreamState,
  source: AnswerSource,
  maxTokens: number,
): ReadPieces {
  const read: ReadPieces = { text: "", tokens: 0, over: false };
  for (const event of events) {
    let delta: string | undefined;
    try {
      delta = readEvent(event, state, source);
    } catch (error) {
      read.failure = error;
      break;
    }
    if (state.contentDeltas > maxTokens) {
      read.over = true;
      break;
    }
    if (delta !== undefined) {
      read.text += delta;
      read.tokens++;
    }
    if (state.done) break;
  }
  return read;
}

/** A response that is not 2xx as a BackendError, with the server's own words. */
export async function errorOf(response: HttpAnswer, source: AnswerSource): Promise<BackendError> {
  const text = await response.text().catch(() => "");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return serverError(source, response.status, body as ServerJson | undefined, text || response.statusText);
}

/** Maps a server error to the most specific reason, keeping the server's own words. */
export function serverError(
  source: AnswerSource,
  status: number,
  body: ServerJson | null | undefined,
  raw: string,
): BackendError {
  const error = body?.error;
  const message: string =
    (typeof error === "string" ? error : error?.message) ?? body?.message ?? body?.detail ?? raw.slice(0, 500);
  const detail = typeof error === "object" ? error : undefined;
  const code = detail?.code;
  const where = `${source.baseUrl} (${status})`;
  if (code === "model_not_found" || (status === 404 && /model/i.test(message))) {
    return new BackendError("model_unavailable", `${where} cannot serve model "${source.model}": ${message}`);
  }
  if (
    code === "context_length_exceeded" ||
    detail?.type === "exceed_context_size_error" ||
    CONTEXT_OVERFLOW.test(message)
  ) {
    return new BackendError("context_too_long", `${where}: ${message}`);
  }
  return new BackendError("backend_failed", `${where}: ${message}`);
}

export function ok(response: HttpAnswer): boolean {
  return response.status >= 200 && response.status < 300;
}

export function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // some errors hide the socket error (ECONNREFUSED …) in `cause`
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.message}${cause}`;
}
