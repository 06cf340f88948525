// Subtasks: a planner splits the request into independent parts (a node answers a planning prompt; the rules
// split numbered lists and several questions when it cannot), the parts run in parallel, and the aggregator
// streams them as one answer in plan order.
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ChatEvent } from "../chat.ts";
import { OrderedRelease } from "./aggregator.ts";
import { requireCapableNode } from "../capable-nodes.ts";
import type { DividedTask, DivisionContext } from "./divided-task.ts";
import { ParentTask } from "./parent-task.ts";
import { PartGroup } from "./part-group.ts";
import { hardest, nodesServing, parallelism, partDifficulty } from "./part-difficulty.ts";
import type { ChatMessageInput, PartResult } from "../part-spec.ts";
import { parsePlan, partHeading, planningMessages, ruleBasedParts } from "./planner.ts";

/** A plan is short: a JSON array of sub-requests. */
const PLAN_MAX_TOKENS = 1_024;

export async function* runSubtasks(
  ctx: DivisionContext,
  task: DividedTask,
): AsyncGenerator<ChatEvent, void, undefined> {
  const parent = new ParentTask(ctx, task, "subtasks");
  // the planner runs alone; then as many parts at once as their nodes have slots (the others wait in the group,
  // not in the network's queue)
  const group = new PartGroup(ctx, task.input.signal, 1);
  try {
    const messages = task.input.messages;
    const lastUser = messages.findLastIndex((m) => m.role === "user");
    const request = messages[lastUser]?.content ?? "";
    const plan = yield* planParts(ctx, task, parent, group, request);
    // each part is judged on its own (a list that is ADVANCED as a whole may be three SIMPLE definitions), and
    // one no online node serves fails the request now, naming it, instead of after the queue's wait
    const difficulties = plan.map((part) => (plan.length > 1 ? partDifficulty(task, part) : task.difficulty));
    difficulties.forEach((difficulty, i) => {
      try {
        requireCapableNode(ctx.registry, { difficulty, model: task.model, exclude: new Set() });
      } catch (err) {
        const error = ConnectError.from(err);
        throw plan.length === 1
          ? error
          : new ConnectError(`part ${i + 1} of ${plan.length} could not be completed: ${error.rawMessage}`, error.code);
      }
    });
    group.setLimit(parallelism(nodesServing(ctx.registry, hardest(difficulties), task.model)));
    // each part is the conversation so far with the last request replaced by the part
    const history = messages.filter((_, i) => i !== lastUser);
    const partMessages = (part: string): ChatMessageInput[] =>
      plan.length > 1 ? [...history, { role: "user", content: part }] : messages;
    const indices = plan.map((part, i) =>
      group.start({
        taskId: randomUUID(),
        parentId: task.taskId,
        mode: "subtasks",
        difficulty: difficulties[i]!,
        classifier: task.classifier,
        messages: partMessages(part),
        maxTokens: task.maxTokens,
        temperature: task.input.temperature,
        model: task.model,
        accountId: task.input.accountId,
        clientAddress: task.input.clientAddress,
        reward: "now",
        // a part waits for a busy node, never for one that is not online
        wait: "while-possible",
      }),
    );
    const offset = indices[0]!; // the planner ran before the parts, in the same group
    const release = new OrderedRelease(plan.length, plan.length > 1 ? (i) => partHeading(i, plan[i]!) : undefined);
    const results: PartResult[] = [];
    for (let settled = 0; settled < plan.length; ) {
      const next = await group.events.next();
      if (next.done) break;
      const item = next.value;
      const index = item.index - offset;
      if (index < 0) continue; // the planner's last words
      if (item.kind === "error") {
        if (item.error.code === Code.Canceled) throw item.error;
        throw new ConnectError(
          `part ${index + 1} of ${plan.length} could not be completed: ${item.error.rawMessage}`,
          item.error.code,
        );
      }
      let out: string[] = [];
      if (item.kind === "result") {
        results[index] = item.result;
        settled++;
        out = release.complete(index);
      } else if (item.event.type === "assigned") {
        const accepted = index === 0 ? parent.accept(item.event.node) : undefined;
        if (accepted) {
          yield accepted;
          out = release.start(); // the first part's heading, before its tokens
        }
      } else if (item.event.type === "queued") {
        if (index === 0 && !parent.accepted) yield item.event;
      } else {
        out = release.token(index, item.event.text);
      }
      for (const text of out) yield parent.token(text, null);
    }
    const nodeIds = results.flatMap((r) => r.nodeIds);
    yield parent.complete(results.at(-1)!, results, nodeIds, false);
  } catch (err) {
    throw parent.fail(err);
  } finally {
    group.cancelAll();
    parent.settle();
  }
}

/**
 * The parts: a node's plan when it gives a usable one, else the rules' split, else the whole request as one part.
 * The planning part is a child task like the others, at the request's difficulty; its failure only means falling
 * back to the rules, and with no node online that serves that difficulty the rules split at once.
 */
async function* planParts(
  ctx: DivisionContext,
  task: DividedTask,
  parent: ParentTask,
  group: PartGroup,
  request: string,
): AsyncGenerator<ChatEvent, string[], undefined> {
  const maxParts = ctx.config.subtasksMaxParts;
  let planned: string[] | undefined;
  let skipped = "";
  if (nodesServing(ctx.registry, task.difficulty, task.model).length === 0)
    skipped = ` (no node online plans ${task.difficulty} requests)`;
  else {
    group.start({
      taskId: randomUUID(),
      parentId: task.taskId,
      mode: "subtasks",
      difficulty: task.difficulty,
      classifier: task.classifier,
      messages: planningMessages(request, maxParts),
      maxTokens: PLAN_MAX_TOKENS,
      temperature: 0,
      model: task.model,
      accountId: task.input.accountId,
      clientAddress: task.input.clientAddress,
      reward: "now",
      wait: "while-possible",
    });
    for (;;) {
      const next = await group.events.next();
      if (next.done) break;
      const item = next.value;
      if (item.kind === "result") {
        planned = parsePlan(item.result.text, maxParts);
        break;
      }
      if (item.kind === "error") {
        if (item.error.code === Code.Canceled) throw item.error;
        ctx.logger.warn(
          { taskId: task.taskId, reason: item.error.rawMessage },
          "the planner failed; splitting by rules",
        );
        break;
      }
      if (item.event.type === "queued" && !parent.accepted) yield item.event;
    }
  }
  const parts = planned ?? ruleBasedParts(request, maxParts);
  const source = planned ? "node" : parts.length > 1 ? "rules" : "none";
  ctx.journal.note(task.taskId, "queued", null, `plan (${source}): ${Math.max(1, parts.length)} part(s)${skipped}`);
  return parts.length > 1 ? parts : [request];
}
