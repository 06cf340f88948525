// `iris stats|nodes|tasks|leaderboard|reputation|models`: the network's read side as tables, or JSON with --json.
import { create, toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { ListModelsResponseSchema } from "../gen/iris/v1/inference_pb.ts";
import {
  GetLeaderboardResponseSchema,
  GetReputationHistoryResponseSchema,
  GetStatsResponseSchema,
  ListNodesResponseSchema,
  ListTasksResponseSchema,
  TaskPurpose,
} from "../gen/iris/v1/network_pb.ts";
import type { DivisionMode } from "../gen/iris/v1/common_pb.ts";
import type { Palette } from "./color.ts";
import {
  difficultyName,
  divisionName,
  formatAgo,
  formatDecimal,
  formatMs,
  formatParameters,
  statusName,
  tierName,
} from "./format.ts";
import type { IrisClient, NodeInfo } from "./sdk.ts";
import { renderFields, renderTable } from "./table.ts";

export interface NetworkOutput {
  json: boolean;
  stdout: NodeJS.WritableStream;
  now: () => number;
  /** Colours for tiers and difficulties (none off a terminal or with NO_COLOR). */
  palette: Palette;
}

/** The response message as protobuf JSON (enum names, 64-bit numbers as strings, zeros included for scripts). */
function printJson<Desc extends DescMessage>(out: NetworkOutput, schema: Desc, message: MessageShape<Desc>): void {
  out.stdout.write(`${JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: true }), null, 2)}\n`);
}

export async function showStats(client: IrisClient, out: NetworkOutput): Promise<void> {
  const stats = await client.stats();
  if (out.json) return printJson(out, GetStatsResponseSchema, create(GetStatsResponseSchema, { stats }));
  const byTier = stats.nodesByTier.map((t) => `${out.palette.tier(tierName(t.tier))} ${t.online}`).join(", ");
  out.stdout.write(
    renderFields([
      ["nodes online", `${stats.nodesOnline}${byTier ? ` (${byTier})` : ""}`],
      ["tasks running", String(stats.tasksRunning)],
      ["tasks completed", String(stats.tasksCompleted)],
      ["tasks failed", String(stats.tasksFailed)],
      ["queue", String(stats.queueLength)],
      ["tokens/s", formatDecimal(stats.tokensPerSecond)],
    ]),
  );
}

const gpuSummary = (node: NodeInfo): string =>
  node.gpus
    .map((g) => `${g.name}${g.vramTotalMb ? ` ${Math.round(Number(g.vramTotalMb) / 1024)} GB` : ""}`)
    .join(", ") || "-";

export async function showNodes(
  client: IrisClient,
  out: NetworkOutput,
  query: { onlineOnly: boolean; limit: number },
): Promise<void> {
  const nodes = await client.nodes(query);
  if (out.json) return printJson(out, ListNodesResponseSchema, create(ListNodesResponseSchema, { nodes }));
  const now = out.now();
  out.stdout.write(
    renderTable(
      [
        { header: "NODE", value: (n) => n.nodeId },
        { header: "STATUS", value: (n) => (n.suspended ? "suspended" : n.online ? "online" : "offline") },
        { header: "TIER", value: (n) => tierName(n.tier), paint: (text) => out.palette.tier(text) },
        { header: "MODEL", value: (n) => n.modelName || "-" },
        { header: "PARAMS", value: (n) => formatParameters(n.parameterCount), align: "right" },
        { header: "QUANT", value: (n) => n.quantization || "-" },
        { header: "GPU", value: gpuSummary },
        { header: "TOK/S", value: (n) => formatDecimal(n.tokensPerSecond), align: "right" },
        { header: "REP", value: (n) => formatDecimal(n.reputation), align: "right" },
        { header: "TASKS", value: (n) => `${n.activeTasks}/${n.maxConcurrentTasks}`, align: "right" },
        { header: "SEEN", value: (n) => (n.online ? "now" : formatAgo(n.lastSeenUnixMs, now)) },
      ],
      nodes,
      "(no nodes have registered yet)",
    ),
  );
}

export async function showTasks(
  client: IrisClient,
  out: NetworkOutput,
  query: { limit: number; nodeId?: string },
): Promise<void> {
  const tasks = await client.tasks(query);
  if (out.json) return printJson(out, ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks }));
  const now = out.now();
  out.stdout.write(
    renderTable(
      [
        // the first block of the UUID is enough to tell tasks apart on a screen; --json has the whole id
        { header: "TASK", value: (t) => t.taskId.slice(0, 8) },
        { header: "STATUS", value: (t) => statusName(t.status) },
        {
          header: "DIFFICULTY",
          value: (t) => difficultyName(t.difficulty),
          paint: (text) => out.palette.difficulty(text),
        },
        { header: "TIER", value: (t) => tierName(t.tier), paint: (text) => out.palette.tier(text) },
        { header: "NODE", value: (t) => t.nodeId || "-" },
        // a divided request's parts, spot checks and canaries name the task they belong to
        { header: "MODE", value: (t) => taskMode(t.divisionMode, t.purpose) },
        { header: "PARENT", value: (t) => t.parentTaskId.slice(0, 8) || "-" },
        { header: "TOKENS", value: (t) => String(t.usage?.completionTokens ?? 0), align: "right" },
        { header: "TTFT", value: (t) => formatMs(t.timeToFirstTokenMs), align: "right" },
        { header: "TOTAL", value: (t) => formatMs(t.totalMs), align: "right" },
        { header: "CREATED", value: (t) => formatAgo(t.createdAtUnixMs, now) },
        { header: "REASON", value: (t) => t.failureReason },
      ],
      tasks,
      "(no tasks yet)",
    ),
  );
}

/** "subtasks", "single"; a check says what it is ("spot check", "canary"). */
function taskMode(mode: DivisionMode, purpose: TaskPurpose): string {
  if (purpose === TaskPurpose.SPOT_CHECK) return "spot check";
  if (purpose === TaskPurpose.CANARY) return "canary";
  return divisionName(mode).toLowerCase();
}

export async function showLeaderboard(client: IrisClient, out: NetworkOutput, limit: number): Promise<void> {
  const entries = await client.leaderboard(limit);
  if (out.json) return printJson(out, GetLeaderboardResponseSchema, create(GetLeaderboardResponseSchema, { entries }));
  out.stdout.write(
    renderTable(
      [
        { header: "RANK", value: (e) => String(e.rank), align: "right" },
        { header: "NODE", value: (e) => e.nodeId },
        { header: "REPUTATION", value: (e) => formatDecimal(e.reputation), align: "right" },
        { header: "TIER", value: (e) => tierName(e.tier), paint: (text) => out.palette.tier(text) },
        { header: "COMPLETED", value: (e) => String(e.tasksCompleted), align: "right" },
      ],
      entries,
      "(no nodes have registered yet)",
    ),
  );
}

export async function showReputation(
  client: IrisClient,
  out: NetworkOutput,
  nodeId: string,
  limit: number,
): Promise<void> {
  const events = await client.reputation(nodeId, { limit });
  if (out.json)
    return printJson(out, GetReputationHistoryResponseSchema, create(GetReputationHistoryResponseSchema, { events }));
  // the score now heads the history; a node without events yet still has its starting score
  const node = (await client.nodes({ limit: 1000 })).find((n) => n.nodeId === nodeId);
  if (node) {
    const status = node.suspended ? "suspended" : node.online ? "online" : "offline";
    out.stdout.write(
      `${nodeId}: reputation ${formatDecimal(node.reputation)}, ` +
        `tier ${out.palette.tier(tierName(node.tier))}, ${status}\n\n`,
    );
  }
  const now = out.now();
  out.stdout.write(
    renderTable(
      [
        { header: "WHEN", value: (e) => formatAgo(e.atUnixMs, now) },
        { header: "RULE", value: (e) => e.rule },
        { header: "DELTA", value: (e) => (e.delta > 0 ? "+" : "") + formatDecimal(e.delta), align: "right" },
        { header: "AFTER", value: (e) => (e.reputationAfter ? formatDecimal(e.reputationAfter) : "-"), align: "right" },
        { header: "TASK", value: (e) => e.taskId.slice(0, 8) || "-" },
        { header: "EVIDENCE", value: (e) => e.evidence },
      ],
      events,
      "(no reputation events yet)",
    ),
  );
}

export async function showModels(client: IrisClient, out: NetworkOutput): Promise<void> {
  const models = await client.models();
  if (out.json) return printJson(out, ListModelsResponseSchema, create(ListModelsResponseSchema, { models }));
  out.stdout.write(
    renderTable(
      [
        { header: "MODEL", value: (m) => m.name },
        { header: "NODES", value: (m) => String(m.nodeCount), align: "right" },
        { header: "BEST TIER", value: (m) => tierName(m.bestTier), paint: (text) => out.palette.tier(text) },
        { header: "PARAMS", value: (m) => formatParameters(m.parameterCount), align: "right" },
        { header: "QUANT", value: (m) => m.quantization || "-" },
      ],
      models,
      "(no node is online)",
    ),
  );
}
