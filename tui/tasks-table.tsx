// The live tasks table: one row per running task with tokens, speed, elapsed time and progress against max_tokens.
import { Text } from "ink";
import type { AgentSnapshot, LiveTask } from "../agent/snapshot.ts";
import { shortId } from "../agent/state.ts";
import { count, duration, padEnd, padStart, progressBar, rate } from "./format.ts";
import { Line } from "./panels.tsx";

const difficultyColors: Record<string, string> = { SIMPLE: "green", COMPLEX: "yellow", ADVANCED: "red" };

interface Column {
  title: string;
  width: number;
  align: "left" | "right";
}

/** Columns that fit `width`; narrow screens drop the max and the bar (the percentage stays). */
function columnsFor(width: number): { columns: Column[]; barWidth: number } {
  const wide = width >= 70;
  const columns: Column[] = [
    { title: "TASK", width: 8, align: "left" },
    { title: wide ? "DIFFICULTY" : "DIFF", width: wide ? 10 : 8, align: "left" },
    { title: "TOKENS", width: 7, align: "right" },
    ...(wide ? [{ title: "MAX", width: 6, align: "right" } as const] : []),
    { title: "TOK/S", width: 6, align: "right" },
    { title: "ELAPSED", width: 8, align: "right" },
  ];
  const used = 1 + columns.reduce((n, c) => n + c.width + 2, 0);
  // the bar and its " 100%" end one cell short of the edge
  const barWidth = wide ? Math.max(0, Math.min(40, width - used - 6)) : 0;
  return { columns: [...columns, { title: wide ? "PROGRESS" : "DONE", width: barWidth + 5, align: "left" }], barWidth };
}

function cell(text: string, column: Column): string {
  return `${column.align === "left" ? padEnd(text, column.width) : padStart(text, column.width)}  `;
}

export function tokensPerSecond(task: LiveTask, now: number): number {
  if (task.firstTokenAt === undefined || task.tokens < 2) return 0;
  const seconds = (now - task.firstTokenAt) / 1000;
  return seconds > 0 ? task.tokens / seconds : 0;
}

/** The tasks section: header plus `rows` lines (running tasks, a "+N more" line, or why the table is empty). */
export function TasksTable({ s, width, rows, now }: { s: AgentSnapshot; width: number; rows: number; now: number }) {
  const { columns, barWidth } = columnsFor(width);
  const total = s.tasks.reduce((n, t) => n + tokensPerSecond(t, now), 0);
  const header = ` ${columns.map((c) => cell(c.title, c)).join("")}`.trimEnd();
  const fullSummary = `${s.tasks.length}/${s.maxConcurrentTasks} running${total > 0 ? ` · ${rate(total)} tok/s` : ""} `;
  const summary = header.length + 2 + fullSummary.length <= width ? fullSummary : "";
  const fill = Math.max(0, width - header.length - summary.length);
  const overflow = s.tasks.length > rows;
  const shown = s.tasks.slice(0, overflow ? Math.max(0, rows - 1) : rows);
  return (
    <>
      <Line>
        <Text backgroundColor="green" color="black" bold>
          {header + " ".repeat(fill) + summary}
        </Text>
      </Line>
      {shown.map((task) => (
        <TaskRow key={task.taskId} task={task} columns={columns} barWidth={barWidth} now={now} />
      ))}
      {overflow ? (
        <Line>
          <Text dimColor> +{s.tasks.length - shown.length} more</Text>
        </Line>
      ) : null}
      {s.tasks.length === 0 && rows > 0 ? <EmptyRow s={s} /> : null}
    </>
  );
}

function TaskRow({
  task,
  columns,
  barWidth,
  now,
}: {
  task: LiveTask;
  columns: Column[];
  barWidth: number;
  now: number;
}) {
  const fraction = task.maxTokens > 0 ? task.tokens / task.maxTokens : 0;
  const [id, difficulty, tokens, ...rest] = columns;
  const byTitle = new Map(rest.map((c) => [c.title, c]));
  const bar = progressBar(fraction, barWidth);
  return (
    <Line>
      <Text> </Text>
      <Text bold>{cell(shortId(task.taskId), id!)}</Text>
      <Text color={difficultyColors[task.difficulty] ?? "white"}>{cell(task.difficulty || "?", difficulty!)}</Text>
      <Text>{cell(count(task.tokens), tokens!)}</Text>
      {byTitle.has("MAX") ? <Text dimColor>{cell(count(task.maxTokens), byTitle.get("MAX")!)}</Text> : null}
      <Text color="cyan">{cell(rate(tokensPerSecond(task, now)), byTitle.get("TOK/S")!)}</Text>
      <Text>{cell(duration(now - task.startedAt), byTitle.get("ELAPSED")!)}</Text>
      <Text color="green">{bar.done}</Text>
      <Text dimColor>{bar.todo}</Text>
      <Text bold>{padStart(`${Math.floor(fraction * 100)}%`, barWidth > 0 ? 5 : 4)}</Text>
    </Line>
  );
}

function EmptyRow({ s }: { s: AgentSnapshot }) {
  if (s.quitting)
    return (
      <Line>
        <Text color="magenta"> no task running · closing the connection</Text>
      </Line>
    );
  if (s.paused)
    return (
      <Line>
        <Text color="yellow"> paused · the coordinator sends this node no new tasks (p resumes)</Text>
      </Line>
    );
  if (s.connection.kind !== "registered")
    return (
      <Line>
        <Text dimColor> not connected · tasks arrive once the coordinator has registered the node</Text>
      </Line>
    );
  return (
    <Line>
      <Text dimColor> idle · waiting for the coordinator to assign a task</Text>
    </Line>
  );
}
