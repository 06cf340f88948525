// Context: a document longer than a node can read is split on token counts with overlap, each chunk is read by
// a node in parallel (map: notes on what matters for the request), and one node answers from the notes
// (reduce), streamed. Notes too long for one node are combined in further rounds first.
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ChatEvent } from "../orchestrator.ts";
import type { RouteRequest } from "../router.ts";
import type { TokenizerRates } from "../../../common/tokenizer-rates.ts";
import { estimateTokens, ratesFor, splitByTokens, tokenWeight } from "./chunking.ts";
import { connectedEligible, ParentTask, PartGroup, type DividedTask, type DivisionContext } from "./divided.ts";
import type { ChatMessageInput, PartResult, PartSpec } from "./part.ts";

/** Tokens kept free in a node's context beside a chunk: instructions and the request's own words. */
const PROMPT_RESERVE_TOKENS = 512;
/** The request is read from the document's first and last paragraphs when it sits in the document's message. */
const CUE_PARAGRAPH_CHARS = 600;

const MAP_INSTRUCTION =
  "You read one part of a long document that is too large to read at once. Others read the other parts. " +
  "Write concise notes of everything in your part that matters for the request below: facts, figures, names, " +
  "quotes. Do not answer the request; if nothing in your part matters, answer with an empty note.";
const REDUCE_INSTRUCTION = "A long document was read in parts; these are the readers' notes, in document order. Answer the request from them.";

export interface ContextBudget {
  /** Tokens per chunk. */
  chunkTokens: number;
  smallestContext: number | undefined;
  /** How text is counted: the capable nodes' tokenizers where they report them, else the estimate. */
  rates: TokenizerRates;
}

/**
 * Tokens per chunk: CONTEXT_CHUNK_TOKENS, lowered so that a chunk, the instructions and the notes
 * (CONTEXT_NOTE_TOKENS) fit the smallest known context length among the nodes that may take the request
 * (unknown lengths do not count); counted at those nodes' tokenizer rates (chunking.ts: ratesFor).
 */
export function contextBudget(ctx: DivisionContext, task: DividedTask): ContextBudget {
  const route: RouteRequest = { difficulty: task.difficulty, model: task.model, exclude: new Set() };
  const capable = connectedEligible(ctx.registry, route);
  // the effective window: the declared one, lowered when the node refused a prompt well below it
  const lengths = capable.map((node) => node.contextLength).filter((length) => length > 0);
  const smallestContext = lengths.length > 0 ? Math.min(...lengths) : undefined;
  const fits = smallestContext === undefined ? Infinity : smallestContext - PROMPT_RESERVE_TOKENS - ctx.config.contextNoteTokens;
  return {
    chunkTokens: Math.max(256, Math.min(ctx.config.contextChunkTokens, fits)),
    smallestContext,
    rates: ratesFor(capable.map((node) => node.capabilities)),
  };
}

/** Where the document is (the longest message) and what is asked about it. */
export function locateDocument(messages: ChatMessageInput[]): { index: number; request: string } {
  let index = 0;
  for (let i = 1; i < messages.length; i++) if (messages[i]!.content.length > messages[index]!.content.length) index = i;
  const lastUser = messages.findLastIndex((m) => m.role === "user");
  if (lastUser >= 0 && lastUser !== index) return { index, request: messages[lastUser]!.content };
  // the request sits in the document's own message: instructions come first or last
  const paragraphs = messages[index]!.content.split(/\n\s*\n/).map((p) => p.trim()).filter((p) => p !== "");
  const ends = [paragraphs[0], paragraphs.length > 1 ? paragraphs.at(-1) : undefined].filter((p): p is string => p !== undefined && p.length <= CUE_PARAGRAPH_CHARS);
  return { index, request: ends.length > 0 ? ends.join("\n…\n") : "Summarise the document." };
}

export async function* runContext(ctx: DivisionContext, task: DividedTask): AsyncGenerator<ChatEvent, void, undefined> {
  const parent = new ParentTask(ctx.journal, task, "context");
  // as many chunks at once as nodes can read them; the others wait in the group, not in the network's queue
  const capable = connectedEligible(ctx.registry, { difficulty: task.difficulty, model: task.model, exclude: new Set() }).length;
  const group = new PartGroup(ctx.parts, task.input.signal, Math.max(1, capable));
  try {
    const messages = task.input.messages;
    const { chunkTokens, rates } = contextBudget(ctx, task);
    const count = (text: string) => tokenWeight(text, rates);
    const { index, request } = locateDocument(messages);
    const chunks = splitByTokens(messages[index]!.content, chunkTokens, ctx.config.contextOverlapTokens, count);
    if (chunks.length > ctx.config.contextMaxChunks) {
      throw new ConnectError(`messages[${index}].content: the document needs ${chunks.length} chunks of ${chunkTokens} tokens; the limit is ${ctx.config.contextMaxChunks}`, Code.InvalidArgument);
    }
    const base = partBase(task);
    let finalMessages: ChatMessageInput[] = messages;
    if (chunks.length > 1) {
      ctx.journal.note(task.taskId, "queued", null, `document of about ${estimateTokens(messages[index]!.content, rates)} tokens in ${chunks.length} chunks of ≤ ${chunkTokens}`);
      const noteTokens = ctx.config.contextNoteTokens;
      let notes = yield* mapRound(group, parent, base, noteTokens, chunks.map((chunk, i) => mapMessages(request, chunk.text, i, chunks.length)));
      // notes too long for one node are combined in rounds until they fit
      for (let round = 2; estimateTokens(notes.join("\n\n"), rates) > chunkTokens && notes.length > 1; round++) {
        const batches = splitByTokens(notes.map((note, i) => `[Part ${i + 1}]\n${note}`).join("\n\n"), chunkTokens, 0, count);
        // no progress (single notes near the budget): the reduce gets them as they are, and a node whose context
        // they overflow fails it with CONTEXT_TOO_LONG
        if (batches.length >= notes.length) break;
        notes = yield* mapRound(group, parent, base, noteTokens, batches.map((batch, i) => mapMessages(request, batch.text, i, batches.length)));
      }
      const lastUser = messages.findLastIndex((m) => m.role === "user");
      const others = messages.filter((_, i) => i !== index && i !== lastUser);
      finalMessages = [...others, { role: "user", content: reducePrompt(request, notes) }];
    }
    // the reduce (or the only chunk) streams to the client
    const reduceIndex = group.start({ ...base, taskId: randomUUID(), started: Date.now(), messages: finalMessages, maxTokens: task.maxTokens, temperature: task.input.temperature });
    for (;;) {
      const next = await group.events.next();
      if (next.done) throw new ConnectError("the answer ended without a result", Code.Internal);
      const item = next.value;
      if (item.index !== reduceIndex) continue;
      if (item.kind === "error") throw item.error.code === Code.Canceled ? item.error : new ConnectError(`the final answer could not be completed: ${item.error.rawMessage}`, item.error.code);
      if (item.kind === "result") {
        yield parent.complete(item.result, [item.result], item.result.nodeIds, false);
        return;
      }
      const event = item.event;
      if (event.type === "assigned") {
        const accepted = parent.accept(event.node);
        if (accepted) yield accepted;
      } else if (event.type === "queued") {
        if (!parent.accepted) yield event;
      } else yield parent.token(event.text, null);
    }
  } catch (err) {
    throw parent.fail(err);
  } finally {
    group.cancelAll();
    parent.settle();
  }
}

type PartBase = Omit<PartSpec, "signal" | "taskId" | "messages" | "maxTokens" | "started">;

function partBase(task: DividedTask): PartBase {
  return {
    parentId: task.taskId,
    mode: "context",
    difficulty: task.difficulty,
    classifier: task.classifier,
    model: task.model,
    accountId: task.input.accountId,
    clientAddress: task.input.clientAddress,
    reward: "now",
    wait: "queue",
  };
}

/** Runs one map round in parallel; resolves with the notes in order, or throws when a chunk cannot be read. */
async function* mapRound(
  group: PartGroup,
  parent: ParentTask,
  base: PartBase,
  noteTokens: number,
  prompts: ChatMessageInput[][],
): AsyncGenerator<ChatEvent, string[], undefined> {
  const indices = prompts.map((messages) => group.start({ ...base, taskId: randomUUID(), started: Date.now(), messages, maxTokens: noteTokens, temperature: 0 }));
  const position = new Map(indices.map((groupIndex, i) => [groupIndex, i]));
  const notes: string[] = new Array<string>(prompts.length).fill("");
  const results: PartResult[] = [];
  while (results.length < prompts.length) {
    const next = await group.events.next();
    if (next.done) throw new ConnectError("the map round ended early", Code.Internal);
    const item = next.value;
    const i = position.get(item.index);
    if (i === undefined) continue;
    if (item.kind === "error") {
      if (item.error.code === Code.Canceled) throw item.error;
      throw new ConnectError(`chunk ${i + 1} of ${prompts.length} could not be read: ${item.error.rawMessage}`, item.error.code);
    }
    if (item.kind === "result") {
      notes[i] = item.result.text.trim();
      results.push(item.result);
    } else if (item.event.type === "assigned") {
      const accepted = parent.accept(item.event.node);
      if (accepted) yield accepted;
    } else if (item.event.type === "queued" && !parent.accepted) yield item.event;
  }
  return notes;
}

function mapMessages(request: string, chunk: string, index: number, count: number): ChatMessageInput[] {
  return [
    { role: "system", content: MAP_INSTRUCTION },
    { role: "user", content: `The request: ${request}\n\nPart ${index + 1} of ${count} of the document:\n\n${chunk}` },
  ];
}

function reducePrompt(request: string, notes: string[]): string {
  const body = notes.map((note, i) => `[Part ${i + 1} of ${notes.length}]\n${note || "(nothing relevant)"}`).join("\n\n");
  return `${REDUCE_INSTRUCTION}\n\n${body}\n\nThe request: ${request}`;
}
