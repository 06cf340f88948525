// The relay throughput benchmark's table and summary for one way of sending chunks: each window's rates, latency
// and coordinator cost, the peak while keeping up, and the CPU ceiling it implies.
import type { WindowResult } from "./load-process.ts";
import { fixed, markdownTable, whole } from "./stats.ts";

/** Delivered below this share of the offered rate counts as saturated. */
export const KEEPS_UP = 0.9;

export interface Measured {
  /** The nodes chunked as agents do: a task's tokens of a tick as one chunk (else one a token). */
  coalesce: boolean;
  nodes: number;
  slots: number;
  offered: number;
  window: WindowResult;
  coordinatorCpu: number;
  coordinatorRss: number;
  loadCpu: number;
}

/** Tokens a second the clients received (tokens, not Token events). */
export const rate = (row: Measured) => row.window.tokens / row.window.seconds;
export const saturated = (row: Measured) => rate(row) < KEEPS_UP * row.offered;
const cpuPerToken = (row: Measured) => ((row.coordinatorCpu / 100) * 1e6) / Math.max(1, rate(row));

/** The table and summary of `rows`; `peak` is the best rate delivered while keeping up, if any kept up. */
export function throughputReport(rows: Measured[]): { markdown: string; peak: number | undefined } {
  if (rows.length === 0) return { markdown: "No window was measured.", peak: undefined };
  const best = (candidates: Measured[]) =>
    candidates.reduce<Measured | undefined>((a, b) => (a && rate(a) >= rate(b) ? a : b), undefined);
  // the peak is the best rate delivered while keeping up; a window that fell behind delivers tokens from a growing
  // backlog (see its latency), which no user would call relaying
  const keptUp = rows.filter((r) => !saturated(r));
  const peak = best(keptUp);
  const most = best(rows)!;
  const table = markdownTable(
    [
      "nodes × slots",
      "chat streams",
      "offered tok/s",
      "sent by nodes tok/s",
      "tokens a chunk",
      "received by clients tok/s",
      "chats done",
      "errors",
      "token latency p50 ms",
      "token latency p99 ms",
      "coordinator CPU %",
      "coordinator CPU µs per token",
      "coordinator RSS MiB",
      "load process CPU %",
    ],
    rows.map((r) => {
      const mark = r === peak ? " **(peak)**" : r === most ? " (most, behind)" : saturated(r) ? " (behind)" : "";
      return [
        `${r.nodes} × ${r.slots}${mark}`,
        String(r.nodes * r.slots),
        whole(r.offered),
        whole(r.window.emitted / r.window.seconds),
        fixed(r.window.emitted / Math.max(1, r.window.chunks), 2),
        r === peak ? `**${whole(rate(r))}**` : whole(rate(r)),
        String(r.window.chats),
        String(r.window.errors),
        fixed(r.window.latencyP50, 1),
        fixed(r.window.latencyP99, 1),
        fixed(r.coordinatorCpu, 0),
        fixed(cpuPerToken(r), 1),
        fixed(r.coordinatorRss, 0),
        fixed(r.loadCpu, 0),
      ];
    }),
  );
  const headline = Math.max(peak ? rate(peak) : 0, rate(most));
  // CPU per token hardly depends on how much CPU other processes leave the coordinator, so the ceiling it implies is
  // what one core would relay if the coordinator had it to itself; only windows that kept up count (in the others
  // CPU also went to tokens still queued)
  const leanest = keptUp.length > 0 ? Math.min(...keptUp.map(cpuPerToken)) : undefined;
  const summary =
    (peak
      ? `Peak while keeping up (≥ ${KEEPS_UP * 100}% of the offered rate delivered): **${whole(rate(peak))} ` +
        `tokens/s** (${peak.nodes} × ${peak.slots}, token latency p50 ${fixed(peak.window.latencyP50, 0)} ms). `
      : "No window kept up with its offered rate. ") +
    (most !== peak
      ? `Most delivered in one window: ${whole(rate(most))} tokens/s (${most.nodes} × ${most.slots}), while falling ` +
        `behind (token latency p50 ${fixed((most.window.latencyP50 ?? Number.NaN) / 1000, 1)} s: tokens queue inside ` +
        `the coordinator). `
      : "") +
    `Target ≥ 100,000 ` +
    `tokens/s: ${headline >= 100_000 ? "met" : `not met (${((100 * headline) / 100_000).toFixed(0)}% of it)`}. ` +
    (leanest !== undefined
      ? `At its cheapest while keeping up, the coordinator spent ${fixed(leanest, 1)} µs of CPU per relayed token: a ` +
        `ceiling ` +
        `of ~${whole(1e6 / leanest)} tokens/s for one fully busy core (the relay runs on Node's one main thread).`
      : "");
  return { markdown: `${table}\n\n${summary}`, peak: peak && rate(peak) };
}
