// The workers benchmark's workload and report: the scripted and load nodes of phases (i) and (ii), a measured
// window's row, and the markdown tables that compare WORKERS=1 with WORKERS=2.
import { cpus, loadavg } from "node:os";
import type { WindowResult } from "./load-process.ts";
import { fixed, markdownTable, whole } from "./stats.ts";

/** (i): scripted nodes × slots, and as many closed-loop clients as slots. */
export const REQUESTS = { nodes: 10, slots: 10, tokens: ["Bon", "jour", " à", " tous", "!"] };
/** (ii): load nodes × slots (one chat stream each), chats of this many tokens, offered rates in this order. */
export const RELAY = { nodes: 20, slots: 5, tokensPerChat: 1_000, ladder: [5_000, 10_000, 20_000, 40_000] };
/** Delivered below this share of the offered rate counts as falling behind. */
const KEEPS_UP = 0.9;

export interface Row {
  workers: number;
  phase: "requests" | "relay";
  offered?: number;
  window: WindowResult;
  /** CPU of the primary and every worker together, % of one core. */
  cpu: number;
  /** The NATS server's and the peer process's CPU, % of one core (the other processes on the cores). */
  natsCpu?: number;
  loadCpu: number;
}

export function workersReport(
  rows: Row[],
  run: { windowMs: number; settleMs: number; loadAtStart: string; databaseLabel: string; natsUrl: string },
): string {
  const rate = (row: Row) => row.window.tokens / row.window.seconds;
  const keptUp = (row: Row) => row.offered !== undefined && rate(row) >= KEEPS_UP * row.offered;
  const summary = [1, 2].map((workers) => {
    const requests = rows.find((r) => r.workers === workers && r.phase === "requests");
    const relay = rows.filter((r) => r.workers === workers && r.phase === "relay");
    const peak = relay
      .filter(keptUp)
      .reduce<Row | undefined>((best, r) => (best && rate(best) >= rate(r) ? best : r), undefined);
    const most = relay.reduce<Row | undefined>((best, r) => (best && rate(best) >= rate(r) ? best : r), undefined);
    return [
      `WORKERS=${workers}`,
      requests ? whole(requests.window.chats / requests.window.seconds) : "n/a",
      requests ? fixed(requests.cpu, 0) : "n/a",
      peak ? whole(rate(peak)) : "none kept up",
      most ? `${whole(rate(most))}${most === peak ? "" : " (behind)"}` : "n/a",
      most ? fixed(most.cpu, 0) : "n/a",
      String(rows.filter((r) => r.workers === workers).reduce((sum, r) => sum + r.window.errors, 0)),
    ];
  });
  const details = rows.map((r) => [
    `WORKERS=${r.workers}`,
    r.phase === "requests"
      ? `(i) ${REQUESTS.nodes * REQUESTS.slots} chats at once`
      : `(ii) offered ${whole(r.offered)} tok/s`,
    whole(r.window.chats / r.window.seconds),
    r.phase === "relay" ? whole(r.window.emitted / r.window.seconds) : "—",
    whole(r.window.tokens / r.window.seconds),
    r.phase === "relay" ? fixed(r.window.latencyP50, 1) : "—",
    r.phase === "relay" ? fixed(r.window.latencyP99, 1) : "—",
    fixed(r.cpu, 0),
    fixed(r.natsCpu, 0),
    fixed(r.loadCpu, 0),
    String(r.window.errors),
  ]);
  return (
    `### Requests/s and tokens/s through the coordinator, 1 and 2 workers\n\n` +
    `machine: ${cpus().length} cores, Node ${process.version}; load average ${run.loadAtStart} at the start, ${loadavg()
      .map((n) => n.toFixed(2))
      .join(" ")} at the end; ` +
    `database: ${run.databaseLabel}; NATS ${run.natsUrl}. The coordinator is \`WORKERS=N npm start\`'s process tree ` +
    `(the primary ` +
    `and its workers; CPU % is of one core, all of them together); nodes and clients share one peer process, each on ` +
    `its own ` +
    `connection to the one port. (i) ${REQUESTS.nodes} scripted nodes × ${REQUESTS.slots} slots ` +
    `answering ${REQUESTS.tokens.length} ` +
    `chunks at once, ${REQUESTS.nodes * REQUESTS.slots} closed-loop gRPC Chat clients. (ii) ${RELAY.nodes} load ` +
    `nodes × ${RELAY.slots} slots, ` +
    `one sealed chunk per token, ${RELAY.nodes * RELAY.slots} clients with chats of ${RELAY.tokensPerChat} tokens, ` +
    `at each offered rate ` +
    `in turn; a window keeps up when clients got at least ${KEEPS_UP * 100}% of it. Windows ` +
    `of ${run.windowMs / 1000} s after ${run.settleMs / 1000} s of settling.\n\n` +
    markdownTable(
      [
        "",
        "requests/s (i)",
        "CPU % (i)",
        "tokens/s relayed, peak keeping up (ii)",
        "tokens/s, most in a window (ii)",
        "CPU % at most (ii)",
        "errors",
      ],
      summary,
    ) +
    `\n\nEvery window:\n\n` +
    markdownTable(
      [
        "",
        "window",
        "chats/s",
        "tokens/s sent by nodes",
        "tokens/s received",
        "token latency p50 ms",
        "token latency p99 ms",
        "coordinator CPU %",
        "nats-server CPU %",
        "peer process CPU %",
        "errors",
      ],
      details,
    )
  );
}
