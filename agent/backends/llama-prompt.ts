// Chat messages rendered as the embedded backend's prompt: through the GGUF's chat template when it has one, else
// as plain "Role: text" lines; tokenized as llama.cpp will evaluate them.
import {
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type LlamaModel,
  type LlamaText,
  type Token,
} from "node-llama-cpp";
import type { BackendMessage } from "./backend.ts";

/** A prompt ready for LlamaCompletion: tokens without the BOS token it prepends itself. */
export interface RenderedPrompt {
  text: string;
  tokens: Token[];
  stopTriggers: (string | LlamaText)[];
}

/**
 * Renders chat messages for completion. With a chat template in the GGUF, node-llama-cpp's chat wrapper for it
 * renders the conversation, ending in an open assistant turn that holds `assistantPrefix`. Without one, a plain
 * format: one "System: …", "User: …" or "Assistant: …" line per message, then "Assistant:" followed by
 * " " + assistantPrefix when given; generation stops where the model starts a new "User:"/"System:" line.
 */
export function renderPrompt(model: LlamaModel, messages: BackendMessage[], assistantPrefix?: string): RenderedPrompt {
  const withBos = model.tokens.shouldPrependBosToken && model.tokens.bos !== null;
  const chatWrapper = model.fileInfo.metadata.tokenizer?.chat_template ? resolveChatWrapper(model) : null;
  if (chatWrapper) return renderWithTemplate(model, chatWrapper, messages, assistantPrefix ?? "", withBos);
  const label = { system: "System", user: "User", assistant: "Assistant" } as const;
  const lines = messages.map((message) => `${label[message.role]}: ${message.content}`);
  const text = [...lines, assistantPrefix ? `Assistant: ${assistantPrefix}` : "Assistant:"].join("\n");
  // Tokenized the way LlamaCompletion tokenizes a string, so the count matches what llama.cpp evaluates.
  const tokens = model.tokenize(text, false, withBos ? "trimLeadingSpace" : undefined);
  return { text, tokens, stopTriggers: ["\nUser:", "\nSystem:"] };
}

function renderWithTemplate(
  model: LlamaModel,
  chatWrapper: ChatWrapper,
  messages: BackendMessage[],
  assistantPrefix: string,
  withBos: boolean,
): RenderedPrompt {
  const chatHistory: ChatHistoryItem[] = messages.map((message) =>
    message.role === "assistant"
      ? { type: "model", response: [message.content] }
      : { type: message.role, text: message.content },
  );
  // An unfinished model turn last: the wrapper leaves it open (no end-of-turn), so the model continues it.
  chatHistory.push({ type: "model", response: [assistantPrefix] });
  const { contextText, stopGenerationTriggers } = chatWrapper.generateContextState({ chatHistory });
  let tokens = contextText.tokenize(model.tokenizer, withBos ? "trimLeadingSpace" : undefined);
  // Templates usually render BOS themselves; LlamaCompletion prepends one too, so drop the template's.
  if (withBos && tokens[0] === model.tokens.bos) tokens = tokens.slice(1);
  return { text: contextText.toString(), tokens, stopTriggers: stopGenerationTriggers };
}
