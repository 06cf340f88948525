// The agent's terminal screen, htop-style: panels on top, the live tasks table, the event log, the key bar.
// Pure: it draws a snapshot at a size and a time; AgentApp feeds it.
import { Box, Text } from "ink";
import type { AgentEvent, AgentSnapshot } from "../agent/snapshot.ts";
import { clock } from "./format.ts";
import { GpuLine, HostLine, NoGpuLine } from "./meters.tsx";
import { KeyBar, Line, ModelLine, StateLine, TierLine, TitleLine, TotalsLine } from "./panels.tsx";
import { TasksTable } from "./tasks-table.tsx";

export interface AgentScreenProps {
  snapshot: AgentSnapshot;
  width: number;
  height: number;
  now: number;
  logFile?: string;
}

/** How the height is shared out; what does not fit goes, least useful first (the log, spacing, the CPU line). */
export interface Layout {
  gpuLines: number;
  host: boolean;
  spacing: boolean;
  taskRows: number;
  logLines: number;
}

export function layoutFor(s: AgentSnapshot, height: number): Layout {
  const gpus = Math.max(1, s.gpus.length);
  // title, state, tier, model, totals, task header, key bar
  const fixed = 7;
  let free = height - fixed;
  const gpuLines = Math.max(1, Math.min(gpus, free - 1));
  free -= gpuLines;
  const host = s.host !== undefined && free >= 2;
  if (host) free--;
  const taskRows = Math.max(0, Math.min(Math.max(1, s.tasks.length), free));
  free -= taskRows;
  // blank lines before the table and the log only when the log (title and at least two lines) fits beside them
  const spacing = free >= 5;
  if (spacing) free -= 2;
  const logLines = free >= 3 ? free - 1 : 0;
  return { gpuLines, host, spacing, taskRows, logLines };
}

export function AgentScreen({ snapshot: s, width, height, now, logFile }: AgentScreenProps) {
  const layout = layoutFor(s, height);
  const hiddenGpus = s.gpus.length - layout.gpuLines;
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <TitleLine s={s} width={width} />
      <StateLine s={s} now={now} />
      <TierLine s={s} />
      <ModelLine s={s} />
      {s.gpus.length === 0 ? <NoGpuLine detected={s.readingsAt !== undefined} /> : null}
      {s.gpus.slice(0, hiddenGpus > 0 ? layout.gpuLines - 1 : layout.gpuLines).map((gpu, i) => (
        <GpuLine key={i} gpu={gpu} index={i} width={width} />
      ))}
      {hiddenGpus > 0 ? (
        <Line>
          <Text dimColor>{`         +${hiddenGpus + 1} more GPUs`}</Text>
        </Line>
      ) : null}
      {layout.host && s.host ? <HostLine host={s.host} width={width} /> : null}
      <TotalsLine s={s} />
      {layout.spacing ? <Text> </Text> : null}
      <TasksTable s={s} width={width} rows={layout.taskRows} now={now} />
      {layout.spacing ? <Text> </Text> : null}
      {layout.logLines > 0 ? <EventLog events={s.events} lines={layout.logLines} /> : null}
      <Box flexGrow={1} />
      <KeyBar s={s} width={width} logFile={logFile} />
    </Box>
  );
}

const levelColors = { info: undefined, warn: "yellow", error: "red" } as const;

function EventLog({ events, lines }: { events: readonly AgentEvent[]; lines: number }) {
  const shown = events.slice(-lines);
  return (
    <>
      <Line>
        <Text bold color="cyan">
          {" "}
          Events
        </Text>
        {events.length > shown.length ? (
          <Text dimColor>
            {" "}
            (last {shown.length} of {events.length})
          </Text>
        ) : null}
      </Line>
      {shown.map((e, i) => (
        <Line key={`${e.at}-${i}`}>
          <Text dimColor> {clock(e.at)} </Text>
          <Text color={levelColors[e.level]}>{e.text}</Text>
        </Line>
      ))}
    </>
  );
}
