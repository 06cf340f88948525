// Whether a conversation fits a node's context window (its prompt estimated with the node's tokenizer rates, plus
// room for an answer), and the refusal in words when it fits no online node's.
import { Code, ConnectError } from "@connectrpc/connect";
import type { TokenizerRates } from "../../common/tokenizer-rates.ts";
import type { LiveNode } from "../nodes/registry.ts";
import { ratesFor } from "./division/chunking.ts";

/**
 * The least room for the answer a node must have: max_tokens when smaller. Not all of max_tokens: the embedded engine
 * refuses only a prompt over its window and stops the answer where the window ends, and a long conversation with a
 * short answer is better than none.
 */
const MIN_ANSWER_TOKENS = 256;
/**
 * Chat-template tokens around each message (role markers, separators): 3 to 5 in Llama, ChatML and Mistral templates.
 */
export const MESSAGE_OVERHEAD_TOKENS = 5;

/** What a conversation needs of a window, counted once so that routing can price it for each node cheaply. */
export interface ContextNeed {
  asciiChars: number;
  otherChars: number;
  messages: number;
  /** Room kept for the answer: min(max_tokens, MIN_ANSWER_TOKENS). */
  answerTokens: number;
}

export function contextNeed(messages: readonly { content: string }[], maxTokens: number): ContextNeed {
  let asciiChars = 0;
  let otherChars = 0;
  for (const { content } of messages) {
    for (let i = 0; i < content.length; i++) {
      const code = content.charCodeAt(i);
      if (code < 0x80) asciiChars++;
      else if (code < 0xdc00 || code > 0xdfff) otherChars++; // a surrogate pair counts once, as in chunking.ts
    }
  }
  return {
    asciiChars,
    otherChars,
    messages: messages.length,
    answerTokens: Math.max(1, Math.min(maxTokens, MIN_ANSWER_TOKENS)),
  };
}

/** The prompt's tokens at `rates`, with the template's overhead. */
export function promptTokens(need: ContextNeed, rates: TokenizerRates): number {
  return (
    Math.ceil(need.asciiChars / rates.asciiCharsPerToken + need.otherChars / rates.otherCharsPerToken) +
    need.messages * MESSAGE_OVERHEAD_TOKENS
  );
}

/** The prompt's tokens on `node`: its measured tokenizer rates (less 10 %), else 3.5 characters a token. */
export function promptTokensOn(node: LiveNode, need: ContextNeed): number {
  return promptTokens(need, ratesFor([node.capabilities]));
}

/**
 * Whether the conversation and room for its answer fit the node's window; an unknown window (0) is given the benefit.
 */
export function fitsContext(node: LiveNode, need: ContextNeed): boolean {
  const window = node.contextLength;
  return window <= 0 || promptTokensOn(node, need) + need.answerTokens <= window;
}

/**
 * The refusal when no node in `capable` (online, serving the request) holds the conversation: how long it is, the
 * largest window online, and the way out. `refusedBy` is a node that refused it although the estimate said it fits.
 */
export function contextTooLong(need: ContextNeed, capable: readonly LiveNode[], refusedBy?: LiveNode): ConnectError {
  const largest = capable.reduce<LiveNode | undefined>(
    (best, node) => (!best || node.contextLength > best.contextLength ? node : best),
    refusedBy,
  );
  const window = largest?.contextLength ?? 0;
  const tokens = largest
    ? promptTokensOn(largest, need)
    : promptTokens(need, { asciiCharsPerToken: 3.5, otherCharsPerToken: 1 });
  const size = `the conversation is about ${count(tokens)} tokens`;
  const largestWindow = `${count(window)} tokens`;
  let sentence: string;
  if (tokens > window)
    sentence =
      `${size}, more than the context of any online node that can take it (the largest ` + `holds ${largestWindow})`;
  else if (tokens + need.answerTokens > window)
    sentence =
      `${size}, which leaves no room for an answer in the largest context of the online nodes that can take ` +
      `it (${largestWindow})`;
  else
    sentence =
      `${size}; node ${refusedBy?.id ?? largest?.id} refused it as longer than its context, and no online ` +
      `node that can take it has a larger one (the largest holds ${largestWindow})`;
  return new ConnectError(`${sentence}; start a new chat, or shorten the conversation`, Code.FailedPrecondition);
}

function count(n: number): string {
  return n.toLocaleString("en-US");
}
