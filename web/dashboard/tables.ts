// The dashboard's tables (nodes, leaderboard, recent tasks, payouts), built with textContent only: node ids and
// model names come from node operators and must never be parsed as HTML.
import type { LeaderboardEntry, NodeInfo, Payout, TaskInfo } from "../../gen/iris/v1/network_pb.ts";
import { TaskPurpose, TaskStatus, Verification } from "../../gen/iris/v1/network_pb.ts";
import {
  clockTime,
  count,
  difficultyLabel,
  divisionLabel,
  duration,
  tierLabel,
  tokensPerSecond,
  verificationLabel,
  vram,
} from "../shared/labels.ts";

type Cell = string | { text: string; className?: string; title?: string };

function row(cells: Cell[], className?: string): HTMLTableRowElement {
  const tr = document.createElement("tr");
  if (className) tr.className = className;
  for (const cell of cells) {
    const td = document.createElement("td");
    if (typeof cell === "string") td.textContent = cell;
    else {
      td.textContent = cell.text;
      if (cell.className) td.className = cell.className;
      if (cell.title) td.title = cell.title;
    }
    tr.append(td);
  }
  return tr;
}

function fill(body: HTMLTableSectionElement, rows: HTMLTableRowElement[], empty: string): void {
  if (rows.length > 0) {
    body.replaceChildren(...rows);
    return;
  }
  const td = document.createElement("td");
  td.colSpan = body.parentElement?.querySelectorAll("th").length ?? 1;
  td.className = "empty";
  td.textContent = empty;
  const tr = document.createElement("tr");
  tr.append(td);
  body.replaceChildren(tr);
}

const tierCell = (tier: Parameters<typeof tierLabel>[0]): Cell => {
  const label = tierLabel(tier);
  return { text: label, className: `tier tier-${label.toLowerCase()}` };
};
const num = (text: string): Cell => ({ text, className: "num" });

/** The speed the tier rests on: the declared benchmark, or the measured one where measurement contradicted it. */
function speedCell(n: NodeInfo): Cell {
  const v = n.verification;
  const measured =
    v && v.speedSamples > 0
      ? `; measured ${tokensPerSecond(v.measuredTokensPerSecond)} over ${v.speedSamples} answers`
      : "";
  const title = `declared ${tokensPerSecond(n.tokensPerSecond)}${measured}`;
  if (v?.speed === Verification.CONTRADICTED || v?.speed === Verification.INFERRED)
    return { text: tokensPerSecond(v.measuredTokensPerSecond), className: "num measured", title };
  return { text: tokensPerSecond(n.tokensPerSecond), className: "num", title };
}

/**
 * What the coordinator checked of the node's declaration: "declared" while nothing was, else the checked things
 * with their verdicts ("speed verified, model contradicted"); the details on hover.
 */
function checksCell(n: NodeInfo): Cell {
  const v = n.verification;
  if (!v) return { text: "declared", className: "checks" };
  const checks = { speed: v.speed, model: v.model, size: v.size, context: v.context };
  const shown = Object.entries(checks).filter(
    ([, verdict]) => verdict !== Verification.DECLARED && verdict !== Verification.UNSPECIFIED,
  );
  const verdicts = shown.map(([, verdict]) => verdict);
  const className = verdicts.includes(Verification.CONTRADICTED)
    ? "checks contradicted"
    : verdicts.includes(Verification.VERIFIED)
      ? "checks verified"
      : "checks";
  const title = [
    `speed: ${verificationLabel(v.speed)} ` +
      `(declared ${tokensPerSecond(n.tokensPerSecond)}${
        v.speedSamples > 0
          ? `, measured ${tokensPerSecond(v.measuredTokensPerSecond)} over ${v.speedSamples} answers`
          : ", not measured yet"
      })`,
    `model: ${verificationLabel(v.model)} (${v.modelEvidence || "nothing to compare with yet"})`,
    `size: ${v.size === Verification.INFERRED ? "parsed from the model name by the coordinator" : "as declared"}`,
    `context: ${verificationLabel(v.context)} (declared ${n.contextLength ? count(n.contextLength) : "unknown"}, ` +
      `proven ${count(v.provenContextTokens)} tokens)`,
    ...(n.tierReason ? [`tier: ${n.tierReason}`] : []),
  ].join("\n");
  const text =
    shown.length === 0
      ? "declared"
      : shown.map(([what, verdict]) => `${what} ${verificationLabel(verdict)}`).join(", ");
  return { text, className, title };
}

export function renderNodes(body: HTMLTableSectionElement, nodes: NodeInfo[]): void {
  const rows = nodes.map((n) => {
    const vramMb = n.gpus.reduce((sum, g) => sum + Number(g.vramTotalMb), 0);
    const gpuNames = n.gpus.map((g) => g.name).join(", ") || "no GPU (CPU)";
    const load = `${Math.round(n.load * 100)} % (${n.activeTasks}/${n.maxConcurrentTasks})`;
    const tr = row(
      [
        { text: n.nodeId, className: "node-id" },
        tierCell(n.tier),
        {
          text: n.modelName || "—",
          className: "model",
          title: [n.quantization, n.parameterCount ? `${count(n.parameterCount)} parameters` : ""]
            .filter(Boolean)
            .join(", "),
        },
        { text: vram(vramMb), className: "num", title: gpuNames },
        speedCell(n),
        checksCell(n),
        num(n.reputation.toFixed(1)),
        num(n.online ? load : "—"),
        {
          text: n.suspended ? "suspended" : n.online ? "online" : `seen ${clockTime(Number(n.lastSeenUnixMs))}`,
          className: n.online ? "status online" : "status offline",
        },
      ],
      n.online ? "online" : "offline",
    );
    tr.dataset.nodeId = n.nodeId;
    return tr;
  });
  fill(body, rows, "No node is connected.");
}

export function renderLeaderboard(body: HTMLTableSectionElement, entries: LeaderboardEntry[]): void {
  const rows = entries.map((e) =>
    row([
      num(String(e.rank)),
      { text: e.nodeId, className: "node-id" },
      tierCell(e.tier),
      num(e.reputation.toFixed(1)),
      num(count(e.tasksCompleted)),
    ]),
  );
  fill(body, rows, "No reputation yet.");
}

const statusClass: Partial<Record<TaskStatus, string>> = {
  [TaskStatus.COMPLETED]: "ok",
  [TaskStatus.FAILED]: "bad",
  [TaskStatus.CANCELLED]: "muted",
};

/**
 * "single", "consensus" for a divided request, "consensus part" (with its request's id) for one of its parts;
 * "spot check" and "canary" for the network's checks.
 */
function modeCell(t: TaskInfo): Cell {
  if (t.purpose === TaskPurpose.SPOT_CHECK)
    return { text: "spot check", className: "task-mode check", title: `checks task ${t.parentTaskId}` };
  if (t.purpose === TaskPurpose.CANARY) {
    return {
      text: "canary",
      className: "task-mode check",
      title: t.parentTaskId
        ? `a peer's answer to canary ${t.parentTaskId}`
        : "a canary: a check the network sent an idle node",
    };
  }
  const mode = divisionLabel(t.divisionMode);
  if (!t.parentTaskId) return { text: mode, className: "task-mode" };
  return { text: `${mode} part`, className: "task-mode part", title: `part of task ${t.parentTaskId}` };
}

export function renderTasks(body: HTMLTableSectionElement, tasks: TaskInfo[]): void {
  const rows = tasks.map((t) => {
    const status = TaskStatus[t.status].toLowerCase();
    return row([
      clockTime(Number(t.createdAtUnixMs)),
      { text: status, className: `task-status ${statusClass[t.status] ?? "active"}`, title: t.failureReason },
      difficultyLabel(t.difficulty),
      modeCell(t),
      tierCell(t.tier),
      { text: t.nodeId || "—", className: "node-id" },
      num(count(t.usage?.completionTokens ?? 0)),
      num(t.timeToFirstTokenMs ? duration(t.timeToFirstTokenMs) : "—"),
      num(t.totalMs ? duration(t.totalMs) : "—"),
      { text: t.taskId.slice(0, 8), className: "task-id", title: t.taskId },
    ]);
  });
  fill(body, rows, "No tasks yet.");
}

export function renderPayouts(body: HTMLTableSectionElement, payouts: Payout[]): void {
  const rows = payouts.map((p) =>
    row([p.month, { text: p.accountId, className: "task-id" }, num(count(p.amount)), num(p.contribution.toFixed(1))]),
  );
  fill(body, rows, "No month has been paid out yet.");
}
