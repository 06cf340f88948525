// The coordinator's SQL in the peers benchmark's profiled phases (recorded by bench/peers-query-count.ts): how many
// statements each request costs, how long they take to come back, and, for requests sent one at a time, which of
// them were in flight between a request's start and its first token (the database on the path to the first token).
import { existsSync, readFileSync } from "node:fs";
import type { QueryEvent } from "./peers-query-count.ts";
import { fixed, markdownTable, percentile, ascending } from "./stats.ts";

/** One request as the client saw it, in epoch ms (performance.timeOrigin + now()). */
export interface RequestSpan {
  start: number;
  first: number;
  end: number;
}

const code = (sql: string) => `\`${sql.replaceAll("|", "\\|")}\``;

function bySql(events: QueryEvent[], weight: (e: QueryEvent) => number): { sql: string; count: number; ms: number }[] {
  const map = new Map<string, { sql: string; count: number; ms: number }>();
  for (const e of events) {
    const entry = map.get(e.sql) ?? { sql: e.sql, count: 0, ms: 0 };
    entry.count++;
    entry.ms += weight(e);
    map.set(e.sql, entry);
  }
  return [...map.values()].sort((a, b) => b.count - a.count || b.ms - a.ms);
}

function read(file: string): QueryEvent[] | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as QueryEvent[]) : undefined;
}

/** Statements per request and their round trips, by statement. */
export function queriesMarkdown(file: string, requests: number, phase: string): string {
  const events = read(file);
  if (!events) return "";
  const ms = events.reduce((sum, e) => sum + (e.end - e.start), 0);
  return (
    `\n\n#### The coordinator's database statements (${phase}, ${requests} ` +
    `requests): ${fixed(events.length / requests, 2)} per request, ` +
    `${fixed(ms / requests, 2)} ms of round trips per request (each from pg's query() to its answer, summed; ` +
    `concurrent ones overlap)\n\n` +
    markdownTable(
      ["per request", "mean ms", "statement"],
      bySql(events, (e) => e.end - e.start)
        .slice(0, 15)
        .map((q) => [fixed(q.count / requests, 2), fixed(q.ms / q.count, 2), code(q.sql)]),
      ["r", "r", "l"],
    )
  );
}

/**
 * For requests sent one at a time: the statements in flight between each request's start and its first token.
 * A statement a previous request deferred can overlap too; with one request at a time that is the only mix-up.
 */
export function firstTokenPathMarkdown(file: string, spans: RequestSpan[]): string {
  const events = read(file);
  if (!events || spans.length === 0) return "";
  const before: QueryEvent[] = [];
  const overlapMs: number[] = [];
  let afterFirst = 0;
  for (const span of spans) {
    let overlap = 0;
    for (const e of events) {
      if (e.start >= span.start && e.start < span.first) {
        before.push(e);
        overlap += Math.min(e.end, span.first) - e.start;
      } else if (e.start >= span.first && e.start <= span.end) afterFirst++;
    }
    overlapMs.push(overlap);
  }
  const ttft = ascending(spans.map((s) => s.first - s.start));
  const withAny = overlapMs.filter((ms) => ms > 0).length;
  return (
    `\n\n#### The database before the first token (${spans.length} streamed requests one at a time, TTFT ` +
    `p50 ${fixed(percentile(ttft, 50))} ms ` +
    "with the coordinator's profiler and statement recorder on)\n\n" +
    `${fixed(before.length / spans.length, 2)} statements per request started between the request's start and its ` +
    `first token (${withAny} of ${spans.length} requests had one), in flight ` +
    `${fixed(overlapMs.reduce((a, b) => a + b, 0) / spans.length, 2)} ms per request on average (p50 ` +
    `${fixed(percentile(ascending(overlapMs), 50))} ms) before that token; ${fixed(afterFirst / spans.length, 2)} ` +
    `per request ` +
    "started between the first token and the end of the answer; the rest came later. In flight, not necessarily " +
    "awaited: the task journal (coordinator/tasks/journal.ts) writes behind the token path, so most of these are the " +
    "previous request's records, competing with this one for the CPU rather than blocking it.\n\n" +
    markdownTable(
      ["before the first token, per request", "mean ms", "statement"],
      bySql(before, (e) => e.end - e.start)
        .slice(0, 12)
        .map((q) => [fixed(q.count / spans.length, 2), fixed(q.ms / q.count, 2), code(q.sql)]),
      ["r", "r", "l"],
    )
  );
}
