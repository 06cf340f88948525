// The /dashboard page: live figures from NetworkService.WatchStats, a tokens/s chart, and tables kept fresh.
import "../shared/base.css";
import "./dashboard.css";
import { ConnectError } from "@connectrpc/connect";
import { Tier } from "../../gen/iris/v1/common_pb.ts";
import type { NetworkStats } from "../../gen/iris/v1/network_pb.ts";
import { pageClient } from "../shared/client.ts";
import { count, tokensPerSecond } from "../shared/labels.ts";
import { setupAdmin } from "./admin.ts";
import { ThroughputChart } from "./chart.ts";
import { watchStats, type LiveStatus } from "./live.ts";
import { renderLeaderboard, renderNodes, renderTasks } from "./tables.ts";

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const body = (tableId: string) => byId<HTMLTableElement>(tableId).tBodies[0]!;
const client = pageClient();
const chart = new ThroughputChart(byId("chart"));
const live = byId<HTMLElement>("live");
const page = document.querySelector<HTMLElement>("main.dashboard")!;
const figureIds = [
  "nodes-online",
  "tier-basic",
  "tier-mid",
  "tier-pro",
  "tasks-completed",
  "tasks-failed",
  "tasks-running",
  "queue-length",
  "tokens-per-second",
];
/** True from the moment the stats stream is lost until it delivers again: what the page shows may be out of date. */
let stale = false;

/** Tables follow the stats stream: at most every few seconds, but at once when nodes or task totals change. */
const TABLES_EVERY_MS = 3000;
const TABLES_SOONEST_MS = 300;
let lastTables = 0;
let tablesRunning = false;
let lastShape = "";

function setText(id: string, text: string): void {
  byId(id).textContent = text;
}

function showStats(stats: NetworkStats): void {
  if (stale) setStale(false);
  setText("nodes-online", count(stats.nodesOnline));
  for (const [tier, id] of [
    [Tier.BASIC, "tier-basic"],
    [Tier.MID, "tier-mid"],
    [Tier.PRO, "tier-pro"],
  ] as const) {
    setText(id, count(stats.nodesByTier.find((t) => t.tier === tier)?.online ?? 0));
  }
  setText("tasks-completed", count(stats.tasksCompleted));
  setText("tasks-failed", count(stats.tasksFailed));
  setText("tasks-running", count(stats.tasksRunning));
  setText("queue-length", count(stats.queueLength));
  setText("tokens-per-second", tokensPerSecond(stats.tokensPerSecond));
  chart.add(Number(stats.atUnixMs), stats.tokensPerSecond);

  const shape = [stats.nodesOnline, stats.tasksCompleted, stats.tasksFailed, stats.tasksRunning].join("/");
  const changed = shape !== lastShape;
  lastShape = shape;
  const since = Date.now() - lastTables;
  if ((changed && since >= TABLES_SOONEST_MS) || since >= TABLES_EVERY_MS) void refreshTables();
}

async function refreshTables(): Promise<void> {
  if (tablesRunning) return;
  tablesRunning = true;
  lastTables = Date.now();
  try {
    const [nodes, leaderboard, tasks] = await Promise.all([
      // connected nodes only: the leaderboard keeps the ones that left
      client.network.listNodes({ onlineOnly: true, limit: 100 }),
      client.network.getLeaderboard({ limit: 10 }),
      client.network.listTasks({ limit: 15 }),
    ]);
    renderNodes(body("nodes"), nodes.nodes);
    if (stale) markNodesUnknown();
    renderLeaderboard(body("leaderboard"), leaderboard.entries);
    renderTasks(body("tasks"), tasks.tasks);
  } catch (err) {
    // the stream's own status says when the coordinator is gone; a failed refresh is retried on the next tick
    console.warn("could not refresh the dashboard's tables:", ConnectError.from(err).rawMessage);
  } finally {
    tablesRunning = false;
  }
}

/** No node is known to be online while the coordinator does not answer: its status reads "unknown". */
function markNodesUnknown(): void {
  for (const cell of body("nodes").querySelectorAll<HTMLElement>("td.status.online")) {
    cell.textContent = "unknown";
    cell.className = "status unknown";
    cell.title = "the coordinator is not answering; this node was online when it last did";
  }
}

/**
 * Stale: every figure reads "—" (its last value on hover) and the node statuses "unknown", so that a page left
 * open through an outage never claims nodes online. Fresh again with the next sample; the tables follow at once.
 */
function setStale(value: boolean): void {
  stale = value;
  page.classList.toggle("stale", value);
  for (const id of figureIds) {
    const figure = byId(id);
    if (value) {
      figure.title = figure.textContent === "—" ? "" : `${figure.textContent} when the coordinator last answered`;
      figure.textContent = "—";
    } else figure.title = "";
  }
  if (value) markNodesUnknown();
  else lastShape = ""; // the next sample refreshes the tables
}

function showStatus(status: LiveStatus): void {
  if (status.state === "reconnecting" && !stale) setStale(true);
  live.dataset.state = status.state;
  live.title = "";
  if (status.state === "live") live.textContent = "live";
  else if (status.state === "connecting") live.textContent = "connecting…";
  else {
    live.textContent = `reconnecting in ${Math.ceil(status.retryInMs / 1000)} s`;
    live.title = status.reason;
  }
}

watchStats(client.network, { intervalMs: 1000, onStats: showStats, onStatus: showStatus });
void refreshTables();

setupAdmin({
  form: byId("sign-in"),
  email: byId("admin-email"),
  password: byId("admin-password"),
  message: byId("admin-message"),
  panel: byId("admin-panel"),
  who: byId("admin-who"),
  signOut: byId("sign-out"),
  payouts: body("payouts"),
});
