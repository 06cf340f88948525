// Consensus: the same request on N nodes of one model and quantization with deterministic sampling; the
// majority answer is returned (streamed as soon as a majority of the N agrees), the minority loses reputation, and
// with no majority nobody does.
import { randomInt, randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { LiveNode } from "../../nodes/registry.ts";
import type { ChatEvent } from "../chat.ts";
import { modelIdentity, type ModelIdentity, type RouteRequest } from "../router.ts";
import { findMajority, normalizedWords, similarity } from "./compare.ts";
import { capableNodes } from "../capable-nodes.ts";
import type { PartResult } from "../part-spec.ts";
import type { DividedTask, DivisionContext } from "./divided-task.ts";
import { ParentTask } from "./parent-task.ts";
import { PartGroup } from "./part-group.ts";

/** The model group with the most connected nodes that may take the request (ties: more free slots). */
export function largestModelGroup(nodes: LiveNode[]): { identity: ModelIdentity; count: number } | undefined {
  const groups = new Map<string, { identity: ModelIdentity; count: number; free: number }>();
  for (const node of nodes) {
    const identity = modelIdentity(node);
    const key = JSON.stringify([identity.modelName, identity.quantization, identity.modelSha256 ?? ""]);
    const group = groups.get(key) ?? { identity, count: 0, free: 0 };
    group.count++;
    group.free += Math.max(0, node.freeSlots);
    groups.set(key, group);
  }
  let best: { identity: ModelIdentity; count: number; free: number } | undefined;
  for (const group of groups.values()) {
    if (!best || group.count > best.count || (group.count === best.count && group.free > best.free)) best = group;
  }
  return best && { identity: best.identity, count: best.count };
}

export async function* runConsensus(
  ctx: DivisionContext,
  task: DividedTask,
): AsyncGenerator<ChatEvent, void, undefined> {
  const requested = task.input.consensusNodes || ctx.config.consensusDefaultNodes;
  if (requested < 2)
    throw new ConnectError(
      "consensus_nodes: consensus needs 2 to 9 nodes (0 means the configured default)",
      Code.InvalidArgument,
    );
  const parent = new ParentTask(ctx, task, "consensus");
  const group = new PartGroup(ctx, task.input.signal);
  const threshold = ctx.config.consensusSimilarity;
  try {
    const route: RouteRequest = { difficulty: task.difficulty, model: task.model, exclude: new Set() };
    const models = largestModelGroup(capableNodes(ctx.registry.nodes(), route));
    // fewer comparable nodes than asked for: one node answers (streamed live), marked unverified
    const count = models && models.count >= requested ? requested : 1;
    if (count === 1) {
      ctx.journal.note(
        task.taskId,
        "queued",
        null,
        `consensus needs ${requested} connected nodes of one model and quantization; ${models?.count ?? 0} found: ` +
          `one node answers, unverified`,
      );
    }
    // temperature 0 and one seed for every copy: the same model and quantization should then give the same text
    const seed = randomInt(2 ** 31);
    const exclude = new Set<string>(); // each copy on a different node
    for (let i = 0; i < count; i++) {
      group.start({
        taskId: randomUUID(),
        parentId: task.taskId,
        mode: "consensus",
        difficulty: task.difficulty,
        classifier: task.classifier,
        messages: task.input.messages,
        maxTokens: task.maxTokens,
        temperature: 0,
        seed,
        model: task.model,
        sameModel: models?.identity,
        exclude,
        distinct: true,
        accountId: task.input.accountId,
        clientAddress: task.input.clientAddress,
        reward: count === 1 ? "now" : "later",
        wait: count === 1 ? "queue" : "while-possible",
      });
    }
    const results: (PartResult | undefined)[] = new Array(count).fill(undefined);
    let lastError: ConnectError | undefined;
    let settled = 0;
    while (settled < count) {
      const next = await group.events.next();
      if (next.done) break;
      const item = next.value;
      if (item.kind === "result") {
        results[item.index] = item.result;
        settled++;
        // a majority of the N asked agrees already: answer now, and judge the copies still running when they end
        const sofar = results.filter((r): r is PartResult => r !== undefined);
        const early =
          count > 1 && settled < count
            ? findMajority(
                sofar.map((a) => a.text),
                requested,
                threshold,
              )
            : undefined;
        if (early?.verified) {
          const chosen = sofar[early.representative]!;
          judge(ctx, sofar, early, threshold);
          group.detach();
          void judgeStragglers(ctx, group, chosen, count - settled, threshold);
          for (const piece of chosen.pieces) yield parent.token(piece, chosen.node.id);
          yield parent.complete(
            chosen,
            [chosen],
            sofar.flatMap((a) => a.nodeIds),
            true,
          );
          return;
        }
      } else if (item.kind === "error") {
        if (item.error.code === Code.Canceled) throw item.error;
        lastError = item.error;
        settled++;
      } else if (item.event.type === "assigned") {
        const accepted = parent.accept(item.event.node);
        if (accepted) yield accepted;
      } else if (item.event.type === "queued") {
        if (!parent.accepted) yield item.event;
      } else if (count === 1) {
        yield parent.token(item.event.text, null);
      }
    }
    const answers = results.filter((r): r is PartResult => r !== undefined);
    if (answers.length === 0)
      throw new ConnectError(
        `every consensus copy failed; last: ${lastError?.rawMessage ?? "unknown"}`,
        lastError?.code ?? Code.Unavailable,
      );
    const verdict = findMajority(
      answers.map((a) => a.text),
      requested,
      threshold,
    );
    const chosen = answers[verdict.representative]!;
    if (count > 1) judge(ctx, answers, verdict, threshold);
    if (count > 1) for (const piece of chosen.pieces) yield parent.token(piece, chosen.node.id);
    yield parent.complete(
      chosen,
      [chosen],
      answers.flatMap((a) => a.nodeIds),
      count > 1 && verdict.verified,
    );
  } catch (err) {
    throw parent.fail(err);
  } finally {
    if (!group.detached) group.cancelAll();
    parent.settle();
  }
}

/**
 * The copies still running when the majority answered: each is held against the majority's answer when it ends
 * (agreeing earns the completion, differing is a mismatch), so a slow liar is caught as surely as a fast one.
 */
async function judgeStragglers(
  ctx: DivisionContext,
  group: PartGroup,
  chosen: PartResult,
  remaining: number,
  threshold: number,
): Promise<void> {
  try {
    while (remaining > 0) {
      const next = await group.events.next();
      if (next.done) return;
      const item = next.value;
      if (item.kind === "event") continue;
      remaining--;
      if (item.kind === "error") continue; // the part's own failure was recorded where it happened
      const agreement = similarity(normalizedWords(chosen.text), normalizedWords(item.result.text), threshold);
      if (agreement >= threshold) item.result.judge("completed");
      else
        ctx.mismatches.record(item.result, {
          check: "consensus",
          reference: chosen.text,
          referenceFrom: chosen.node.id,
          referenceTaskId: chosen.taskId,
          similarity: agreement,
          threshold,
        });
    }
  } catch (err) {
    ctx.logger.error({ err, taskId: chosen.taskId }, "could not judge a consensus copy that ended after the majority");
  }
}

/**
 * With a majority, its nodes earn the completion and the others get the invalid-response rule; without one
 * every node that answered earns the completion (no one can tell who was right).
 */
function judge(
  ctx: DivisionContext,
  answers: PartResult[],
  verdict: ReturnType<typeof findMajority>,
  threshold: number,
): void {
  const chosen = answers[verdict.representative]!;
  if (!verdict.verified) {
    for (const answer of answers) answer.judge("completed");
    return;
  }
  for (const i of verdict.agreeing) answers[i]!.judge("completed");
  for (const i of verdict.dissenting) {
    ctx.mismatches.record(answers[i]!, {
      check: "consensus",
      reference: chosen.text,
      referenceFrom: chosen.node.id,
      referenceTaskId: chosen.taskId,
      similarity: verdict.similarities[i]!,
      threshold,
    });
  }
}
