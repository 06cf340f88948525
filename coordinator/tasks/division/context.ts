// Context: a document longer than a node can read is split on token counts with overlap, each chunk is read by
// a node in parallel (map: a note on what matters for the request), notes are merged in rounds until they fit one
// prompt (combine), and one node answers from them (reduce), streamed. Budgets: budget.ts; prompts: context-prompts.ts.
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Difficulty } from "../../../common/vocabulary.ts";
import type { LiveNode } from "../../nodes/registry.ts";
import type { TokenizerRates } from "../../../common/tokenizer-rates.ts";
import { requireCapableNode } from "../capable-nodes.ts";
import type { ChatEvent } from "../chat.ts";
import { contextBudgetFor, cutToTokens, packNotes, SAFETY_TOKENS, type ContextBudget } from "./budget.ts";
import { estimateTokens, ratesFor, splitByTokens, tokenWeight, type TokenCounter } from "./chunking.ts";
import {
  combineMessages,
  conversationTokens,
  EMPTY_NOTE,
  locateDocument,
  mapMessages,
  noteWeight,
  promptOverheadTokens,
  reduceMessages,
  widestHeaderTokens,
} from "./context-prompts.ts";
import type { DividedTask, DivisionContext } from "./divided-task.ts";
import { ParentTask } from "./parent-task.ts";
import { PartGroup } from "./part-group.ts";
import { nodesServing, parallelism, partDifficulty } from "./part-difficulty.ts";
import type { ChatMessageInput, PartResult, PartSpec } from "../part-spec.ts";

/** A request's reading plan, for the nodes online now. */
export interface ContextPlan {
  /** Every part's difficulty: the request's own, not the document's length. */
  difficulty: Difficulty;
  /** Connected nodes that serve it. */
  capable: LiveNode[];
  rates: TokenizerRates;
  count: TokenCounter;
  documentIndex: number;
  /** As the prompts quote it: cut to an eighth of the window. */
  request: string;
  /** The conversation besides the document and the last user message: the reduce's context. */
  others: ChatMessageInput[];
  /** The whole conversation as one prompt. */
  conversationTokens: number;
  /** Undefined when the smallest window leaves no room for a chunk. */
  budget: ContextBudget | undefined;
  window: number | undefined;
}

/**
 * The plan: counted at the capable nodes' tokenizer rates (chunking.ts: ratesFor), sized to the smallest known
 * window among them (the effective one: lowered when a node refused a prompt well below its declaration).
 */
export function planContext(ctx: DivisionContext, task: DividedTask): ContextPlan {
  const messages = task.input.messages;
  const { index, request: asked } = locateDocument(messages);
  const difficulty = partDifficulty(task, asked);
  const capable = nodesServing(ctx.registry, difficulty, task.model);
  const lengths = capable.map((node) => node.contextLength).filter((length) => length > 0);
  const window = lengths.length > 0 ? Math.min(...lengths) : undefined;
  const rates = ratesFor(capable.map((node) => node.capabilities));
  const count = (text: string) => tokenWeight(text, rates);
  const request = window === undefined ? asked : cutToTokens(asked, Math.floor(window / 8), count);
  const lastUser = messages.findLastIndex((m) => m.role === "user");
  const others = messages.filter((_, i) => i !== index && i !== lastUser);
  const overhead = promptOverheadTokens(request, others, count);
  return {
    difficulty,
    capable,
    rates,
    count,
    documentIndex: index,
    request,
    others,
    conversationTokens: conversationTokens(messages, count),
    budget: contextBudgetFor(window, overhead, widestHeaderTokens(count), ctx.config),
    window,
  };
}

/** Whether one node reads the whole conversation: within a chunk's prompt, so with room for an answer. */
export function fitsOneNode(plan: ContextPlan): boolean {
  const limit = plan.budget
    ? plan.budget.chunkTokens + plan.budget.overheadTokens
    : (plan.window ?? Infinity) - SAFETY_TOKENS;
  return plan.conversationTokens <= limit;
}

export async function* runContext(ctx: DivisionContext, task: DividedTask): AsyncGenerator<ChatEvent, void, undefined> {
  const parent = new ParentTask(ctx, task, "context");
  let group: PartGroup | undefined;
  try {
    const plan = planContext(ctx, task);
    requireCapableNode(ctx.registry, { difficulty: plan.difficulty, model: task.model, exclude: new Set() });
    const budget = plan.budget;
    if (!budget) {
      const smallest =
        `the smallest context window among the nodes that serve ${plan.difficulty} requests ` +
        `(${plan.window} tokens)`;
      throw new ConnectError(
        `${smallest} leaves no room for a chunk of a document beside the instructions and the request`,
        Code.FailedPrecondition,
      );
    }
    // as many parts at once as the nodes have slots; the others wait in the group, not in the network's queue
    group = new PartGroup(ctx, task.input.signal, parallelism(plan.capable));
    const messages = task.input.messages;
    const base = partBase(task, plan.difficulty);
    let finalMessages: ChatMessageInput[] = messages;
    if (!fitsOneNode(plan)) finalMessages = yield* readDocument(ctx, task, plan, budget, group, parent, base);
    // the reduce (or the whole conversation, when one node reads it) streams to the client
    const reduceIndex = group.start({
      ...base,
      taskId: randomUUID(),
      messages: finalMessages,
      maxTokens: task.maxTokens,
      temperature: task.input.temperature,
    });
    for (;;) {
      const next = await group.events.next();
      if (next.done) throw new ConnectError("the answer ended without a result", Code.Internal);
      const item = next.value;
      if (item.index !== reduceIndex) continue;
      if (item.kind === "error") throw partFailure("the final answer could not be completed", item.error);
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
    group?.cancelAll();
    parent.settle();
  }
}

/** Map and combine: the reduce's conversation, whose notes fit one chunk's budget. */
async function* readDocument(
  ctx: DivisionContext,
  task: DividedTask,
  plan: ContextPlan,
  budget: ContextBudget,
  group: PartGroup,
  parent: ParentTask,
  base: PartBase,
): AsyncGenerator<ChatEvent, ChatMessageInput[], undefined> {
  const document = task.input.messages[plan.documentIndex]!.content;
  const chunks = splitByTokens(document, budget.chunkTokens, budget.overlapTokens, plan.count);
  const documentTokens = estimateTokens(document, plan.rates);
  if (chunks.length > ctx.config.contextMaxChunks) {
    const window = plan.window === undefined ? "" : ` for the nodes' context window of ${plan.window}`;
    throw new ConnectError(
      `messages[${plan.documentIndex}].content: the document of about ${documentTokens} tokens ` +
        `needs ${chunks.length} chunks of ${budget.chunkTokens} tokens${window}; the limit ` +
        `is ${ctx.config.contextMaxChunks} ` +
        `(CONTEXT_MAX_CHUNKS)`,
      Code.InvalidArgument,
    );
  }
  ctx.journal.note(
    task.taskId,
    "queued",
    null,
    `document of about ${documentTokens} tokens in ${chunks.length} chunks of ≤ ${budget.chunkTokens} ` +
      `(window ${plan.window ?? "unknown"}, prompt ${budget.overheadTokens}, notes ≤ ${budget.noteTokens})`,
  );
  const read = (what: string, prompts: ChatMessageInput[][]) =>
    readRound(group, parent, base, budget, plan.count, what, prompts);
  let notes = yield* read(
    "chunk",
    chunks.map((chunk, i) => mapMessages(plan.request, chunk.text, i, chunks.length)),
  );
  // each round packs the notes into batches of ≤ B; a note takes ≤ B / 2, so a batch holds two at least and the
  // count at least halves (budget.ts: packNotes) until the notes fit one prompt
  for (let round = 2; notes.length > 1; round++) {
    const weights = notes.map((note, i) => noteWeight(note, i, notes.length, plan.count));
    if (weights.reduce((sum, w) => sum + w, 0) <= budget.chunkTokens) break;
    const batches = packNotes(weights, budget.chunkTokens);
    const current = notes;
    notes = yield* read(
      `batch of notes (round ${round})`,
      batches.map(([from, to]) => combineMessages(plan.request, current, from, to)),
    );
  }
  return reduceMessages(plan.others, plan.request, notes);
}

type PartBase = Omit<PartSpec, "signal" | "taskId" | "messages" | "maxTokens" | "started">;

function partBase(task: DividedTask, difficulty: Difficulty): PartBase {
  return {
    parentId: task.taskId,
    mode: "context",
    difficulty,
    classifier: task.classifier,
    model: task.model,
    accountId: task.input.accountId,
    clientAddress: task.input.clientAddress,
    reward: "now",
    // a part waits for a busy node, never for one that is not online
    wait: "while-possible",
  };
}

/** Runs one round of notes in parallel; resolves with the notes in order, each held to the note cap. */
async function* readRound(
  group: PartGroup,
  parent: ParentTask,
  base: PartBase,
  budget: ContextBudget,
  count: TokenCounter,
  what: string,
  prompts: ChatMessageInput[][],
): AsyncGenerator<ChatEvent, string[], undefined> {
  const indices = prompts.map((messages) =>
    group.start({ ...base, taskId: randomUUID(), messages, maxTokens: budget.noteTokens, temperature: 0 }),
  );
  const position = new Map(indices.map((groupIndex, i) => [groupIndex, i]));
  const notes: string[] = new Array<string>(prompts.length).fill("");
  const results: PartResult[] = [];
  while (results.length < prompts.length) {
    const next = await group.events.next();
    if (next.done) throw new ConnectError(`the round of ${what}s ended early`, Code.Internal);
    const item = next.value;
    const i = position.get(item.index);
    if (i === undefined) continue;
    if (item.kind === "error") throw partFailure(`${what} ${i + 1} of ${prompts.length} could not be read`, item.error);
    if (item.kind === "result") {
      // a note of N tokens may count for more at the splitting rates: held to the cap, it takes ≤ B / 2 in a prompt
      notes[i] = cutToTokens(item.result.text.trim() || EMPTY_NOTE, budget.noteCapTokens, count);
      results.push(item.result);
    } else if (item.event.type === "assigned") {
      const accepted = parent.accept(item.event.node);
      if (accepted) yield accepted;
    } else if (item.event.type === "queued" && !parent.accepted) yield item.event;
  }
  return notes;
}

/**
 * A part's failure as the request's: the budgets are the coordinator's, so a part refused as too long (or any
 * other refusal of what the coordinator wrote) is Internal, never the caller's InvalidArgument; nodes missing,
 * busy or late keep their code. The client's cancel stays a cancel.
 */
function partFailure(what: string, error: ConnectError): ConnectError {
  if (error.code === Code.Canceled) return error;
  const kept =
    error.code === Code.Unavailable || error.code === Code.ResourceExhausted || error.code === Code.DeadlineExceeded;
  return new ConnectError(`${what}: ${error.rawMessage}`, kept ? error.code : Code.Internal);
}
