// Long documents for context mode's tests, sized in tokens of the generated tiny model's tokenizer (about one a
// character), and the prompt count that model's embedded engine makes.
import { Role } from "../../gen/iris/v1/common_pb.ts";
import type { TaskPayload } from "../../gen/iris/v1/node_pb.ts";

/** A question the local classifier calls SIMPLE: context mode's parts about a long document are SIMPLE with it. */
export const QUESTION = "What does the log say about the token?";

/** Log lines, blank lines between them, about `tokens` tiny-model tokens (characters) in all. */
export function logDocument(tokens: number): string {
  const lines: string[] = [];
  for (let i = 0, length = 0; length < tokens; i++) {
    lines.push(`Log ${i}: the node said the model is hot and the token was out.`);
    length += lines.at(-1)!.length + 2;
  }
  return lines.join("\n\n");
}

const label: Record<number, string> = { [Role.SYSTEM]: "System", [Role.USER]: "User", [Role.ASSISTANT]: "Assistant" };

/**
 * The prompt's tokens as the embedded engine counts them for the tiny model (agent/backends/llama-prompt.ts
 * renderPrompt, no chat template): one a character of "System: …\nUser: …\nAssistant:", and the BOS.
 */
export function tinyPromptTokens(payload: TaskPayload): number {
  return [...payload.messages.map((m) => `${label[m.role]}: ${m.content}`), "Assistant:"].join("\n").length + 1;
}
