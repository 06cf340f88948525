// Context mode's prompts (map: notes on a chunk; combine: notes on notes; reduce: the answer), where the document and
// the request are in a conversation, and what the prompts cost around the text they carry (budget.ts's overhead).
import { TEMPLATE_TOKENS_PER_MESSAGE } from "./budget.ts";
import type { TokenCounter } from "./chunking.ts";
import type { ChatMessageInput } from "../part-spec.ts";

// Short on purpose: every map prompt carries its instruction, and on a small window it is the chunk's room.
export const MAP_INSTRUCTION =
  "Note briefly what in this part of a long document matters for the request. Do not answer it.";
export const COMBINE_INSTRUCTION =
  "Merge these notes on parts of a long document into one brief note on what matters for the request.";
export const REDUCE_INSTRUCTION =
  "A long document was read in parts; these are the notes, in order. Answer the request from them.";
/** What an empty note says in later prompts (notes are stored with it). */
export const EMPTY_NOTE = "(nothing relevant)";
/** The request is read from the document's first and last paragraphs when it sits in the document's message. */
const CUE_PARAGRAPH_CHARS = 600;
/** Part numbers are counted at this width in the overhead, so any count of parts fits what was reserved. */
const WIDEST_NUMBER = 99_999;
/** Role labels as the plain prompt format writes them ("Assistant: " is the longest); templates spend about as much. */
const ROLE_LABEL = "Assistant: \n";

/** Where the document is (the longest message) and what is asked about it. */
export function locateDocument(messages: readonly ChatMessageInput[]): { index: number; request: string } {
  let index = 0;
  for (let i = 1; i < messages.length; i++)
    if (messages[i]!.content.length > messages[index]!.content.length) index = i;
  const lastUser = messages.findLastIndex((m) => m.role === "user");
  if (lastUser >= 0 && lastUser !== index) return { index, request: messages[lastUser]!.content };
  // the request sits in the document's own message: instructions come first or last
  const paragraphs = messages[index]!.content.split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter((p) => p !== "");
  const ends = [paragraphs[0], paragraphs.length > 1 ? paragraphs.at(-1) : undefined].filter(
    (p): p is string => p !== undefined && p.length <= CUE_PARAGRAPH_CHARS,
  );
  return { index, request: ends.length > 0 ? ends.join("\n…\n") : "Summarise the document." };
}

export function mapMessages(request: string, chunk: string, index: number, count: number): ChatMessageInput[] {
  return [
    { role: "system", content: MAP_INSTRUCTION },
    { role: "user", content: `${mapLead(request, index + 1, count)}${chunk}` },
  ];
}

export function combineMessages(
  request: string,
  notes: readonly string[],
  from: number,
  to: number,
): ChatMessageInput[] {
  return [
    { role: "system", content: COMBINE_INSTRUCTION },
    { role: "user", content: `The request: ${request}\n\n${notesBlock(notes, from, to)}` },
  ];
}

/** The conversation besides the document and the request, then the notes and the request. */
export function reduceMessages(
  others: readonly ChatMessageInput[],
  request: string,
  notes: readonly string[],
): ChatMessageInput[] {
  return [
    ...others,
    {
      role: "user",
      content: `${REDUCE_INSTRUCTION}\n\n${notesBlock(notes, 0, notes.length)}\n\nThe request: ${request}`,
    },
  ];
}

/** The label in front of a note, as the notes block writes it. */
export function noteHeader(index: number, count: number): string {
  return `[Part ${index + 1} of ${count}]\n`;
}

/** The tokens a note takes in a notes block: its header, its text and the blank line after it. */
export function noteWeight(note: string, index: number, count: number, tokens: TokenCounter): number {
  return tokens(`${noteHeader(index, count)}${note}\n\n`);
}

/** The widest header (and blank line) a note may carry: the overhead's allowance per note. */
export function widestHeaderTokens(tokens: TokenCounter): number {
  return tokens(`${noteHeader(WIDEST_NUMBER - 1, WIDEST_NUMBER)}\n\n`);
}

/**
 * The most tokens the prompt of any of the three steps takes besides the chunk or the notes it carries: the
 * instruction, the request, the labels, the chat template's tokens (TEMPLATE_TOKENS_PER_MESSAGE a message, and the
 * assistant's turn); the reduce's also holds the rest of the conversation.
 */
export function promptOverheadTokens(
  request: string,
  others: readonly ChatMessageInput[],
  tokens: TokenCounter,
): number {
  const framing = (messages: number, text: string) =>
    tokens(text) + messages * tokens(ROLE_LABEL) + (messages + 1) * TEMPLATE_TOKENS_PER_MESSAGE;
  const map = framing(2, MAP_INSTRUCTION + mapLead(request, WIDEST_NUMBER, WIDEST_NUMBER));
  const combine = framing(2, `${COMBINE_INSTRUCTION}The request: ${request}\n\n`);
  const conversation = others.map((m) => m.content).join("");
  const reduce = framing(others.length + 1, `${conversation}${REDUCE_INSTRUCTION}\n\n\n\nThe request: ${request}`);
  return Math.ceil(Math.max(map, combine, reduce));
}

/** The whole conversation as one node would read it, template included. */
export function conversationTokens(messages: readonly ChatMessageInput[], tokens: TokenCounter): number {
  const text = messages.map((m) => m.content).join("");
  return Math.ceil(
    tokens(text) + messages.length * tokens(ROLE_LABEL) + (messages.length + 1) * TEMPLATE_TOKENS_PER_MESSAGE,
  );
}

function mapLead(request: string, part: number, count: number): string {
  return `The request: ${request}\n\nPart ${part} of ${count} of the document:\n\n`;
}

function notesBlock(notes: readonly string[], from: number, to: number): string {
  const count = notes.length;
  return notes
    .slice(from, to)
    .map((note, i) => `${noteHeader(from + i, count)}${note}`)
    .join("\n\n");
}
