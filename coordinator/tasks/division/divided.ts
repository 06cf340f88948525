// The divided modes from the orchestrator's side: which mode auto picks for a request (autoMode) and running a
// request in a divided mode (runDivided). What the modes share: divided-task.ts, parent-task.ts, part-group.ts.
import type { Difficulty, DivisionMode } from "../../../common/vocabulary.ts";
import type { ChatEvent } from "../chat.ts";
import { runConsensus } from "./consensus.ts";
import { fitsOneNode, planContext, runContext } from "./context.ts";
import type { DividedTask, DivisionContext } from "./divided-task.ts";
import { chooseAutoMode } from "./mode.ts";
import { hardest, nodesServing, partDifficulty } from "./part-difficulty.ts";
import { ruleBasedParts } from "./planner.ts";
import { runSubtasks } from "./subtasks.ts";

export function runDivided(
  ctx: DivisionContext,
  task: DividedTask,
  mode: Exclude<DivisionMode, "single">,
): AsyncGenerator<ChatEvent, void, undefined> {
  if (mode === "consensus") return runConsensus(ctx, task);
  if (mode === "subtasks") return runSubtasks(ctx, task);
  return runContext(ctx, task);
}

/**
 * auto's concrete mode for this request and the nodes online now (see mode.ts for the rule): each candidate's parts
 * are judged on their own (part-difficulty.ts) and counted against the nodes that serve them, so auto never picks a
 * mode that waits for a tier that is not online when another mode's parts can be served.
 */
export function autoMode(ctx: DivisionContext, task: DividedTask): DivisionMode {
  const messages = task.input.messages;
  const plan = planContext(ctx, task);
  const lastUser = messages.findLast((m) => m.role === "user")?.content ?? "";
  const parts = ruleBasedParts(lastUser, ctx.config.subtasksMaxParts);
  const serving = (difficulty: Difficulty) => nodesServing(ctx.registry, difficulty, task.model).length;
  const choice = chooseAutoMode({
    conversationTokens: plan.conversationTokens,
    fitsOneNode: fitsOneNode(plan),
    difficulty: task.difficulty,
    wholeNodes: serving(task.difficulty),
    ruleParts: parts.length,
    partNodes: parts.length >= 2 ? serving(hardest(parts.map((part) => partDifficulty(task, part)))) : 0,
  });
  ctx.logger.debug({ taskId: task.taskId, mode: choice.mode, reason: choice.reason }, "auto division mode");
  return choice.mode;
}
