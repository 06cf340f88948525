// The periodic reputation rules (uptime, broken promise, weekly decay), applied once per period by any number of
// coordinators.
/*
 * Definitions (UTC throughout; see periods.ts):
 * - Uptime: +1 for each completed UTC hour in which the node was connected for at least 55 minutes,
 *   counting the union of its node_sessions intervals (overlapping sessions count once). Key
 *   "uptime:2026-11-26T03".
 * - Broken promise: -5 for each completed UTC hour listed in the node's promised_hours (UTC hours of the
 *   day, 0-23) in which it was connected for less than 5 minutes; only hours that start at or after
 *   nodes.promised_hours_since (when the current promise was declared), so nodes without a promise and
 *   hours before a promise are never judged. Key "promise:2026-11-26T03".
 * - Weekly decay: -1 % (rules.ts) once per ISO week, applied at the start of the following week to
 *   every node first seen before that week ended. Key "decay:2026-W48".
 * - An open session counts as connected until now, but no longer than 2 minutes past the node's
 *   last_seen_at (refreshed every 30 s for live nodes): a session left open by a coordinator that died
 *   must not earn uptime forever.
 * Every pass looks at the last 48 completed hours and the last 2 completed weeks and applies what is
 * missing, so the first pass after a start is the catch-up and periods older than that are given up.
 * Exactly-once comes from the UNIQUE (node_id, rule, period_key) of reputation_events, so passes may
 * overlap, repeat, or run in several coordinator processes against one database.
 */
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database, ReputationRule } from "../db/schema.ts";
import { applyReputationEvent } from "./ledger.ts";
import {
  completedHours,
  completedWeeks,
  coveredMs,
  HOUR_MS,
  hourLabel,
  type Interval,
  isoWeekLabel,
  mergeIntervals,
  parsePromisedHours,
  WEEK_MS,
} from "./periods.ts";
import { decayDelta, RULE_DELTAS } from "./rules.ts";

const UPTIME_MIN_CONNECTED_MS = 55 * 60_000;
const PROMISE_MIN_CONNECTED_MS = 5 * 60_000;
const CATCH_UP_HOURS = 48;
const CATCH_UP_WEEKS = 2;
/** How long past its last_seen_at an open session still counts (the monitor touches live nodes every 30 s). */
const OPEN_SESSION_GRACE_MS = 2 * 60_000;
const DEFAULT_INTERVAL_MS = 60_000;

export interface PassSummary {
  uptime: number;
  brokenPromise: number;
  decay: number;
  failed: number;
}

interface DueEvent {
  nodeId: string;
  accountId: string;
  rule: ReputationRule;
  periodKey: string;
  /** When the period ended: a node's events apply in this order, so decay sees the hours before it. */
  endsAt: number;
  delta: number | ((current: number) => number);
  evidence: { [key: string]: string | number };
}

type PeriodicRule = "uptime" | "broken_promise" | "weekly_decay";
const PERIODIC_RULES: PeriodicRule[] = ["uptime", "broken_promise", "weekly_decay"];

/** One pass at time `nowMs`: finds the periodic events due and not yet recorded, and applies them. */
export async function runReputationPass(options: {
  db: Kysely<Database>;
  nowMs: number;
  logger?: Pick<Logger, "warn">;
  onChange?: (nodeId: string, reputation: number) => void;
}): Promise<PassSummary> {
  const due = await dueEvents(options.db, options.nowMs);
  const summary: PassSummary = { uptime: 0, brokenPromise: 0, decay: 0, failed: 0 };
  for (const event of due) {
    try {
      const result = await applyReputationEvent(options.db, event);
      if (!result.applied) continue; // another coordinator got there first
      if (event.rule === "uptime") summary.uptime++;
      else if (event.rule === "broken_promise") summary.brokenPromise++;
      else summary.decay++;
      if (result.delta !== 0) options.onChange?.(event.nodeId, result.reputation);
    } catch (err) {
      summary.failed++;
      options.logger?.warn(
        { err, nodeId: event.nodeId, periodKey: event.periodKey },
        "reputation event could not be applied",
      );
    }
  }
  return summary;
}

async function dueEvents(db: Kysely<Database>, nowMs: number): Promise<DueEvent[]> {
  const hours = completedHours(nowMs, CATCH_UP_HOURS);
  const weeks = completedWeeks(nowMs, CATCH_UP_WEEKS);
  const windowStart = hours[0] ?? nowMs;
  const windowEnd = windowStart + hours.length * HOUR_MS;
  const keys = [
    ...hours.flatMap((h) => [`uptime:${hourLabel(h)}`, `promise:${hourLabel(h)}`]),
    ...weeks.map((w) => `decay:${isoWeekLabel(w)}`),
  ];

  const nodes = await db
    .selectFrom("nodes")
    .select(["id", "account_id", "promised_hours", "promised_hours_since", "first_seen_at", "last_seen_at"])
    .execute();
  const sessions = await db
    .selectFrom("node_sessions as s")
    .select(["s.node_id", "s.connected_at", "s.disconnected_at"])
    .select((eb) =>
      eb
        .selectFrom("node_sessions as later")
        .select((sub) => sub.fn.min("later.connected_at").as("at"))
        .whereRef("later.node_id", "=", "s.node_id")
        .whereRef("later.connected_at", ">", "s.connected_at")
        .as("next_connected_at"),
    )
    .where("s.connected_at", "<", new Date(windowEnd))
    .where((eb) => eb.or([eb("s.disconnected_at", "is", null), eb("s.disconnected_at", ">", new Date(windowStart))]))
    .execute();
  const existing = await db
    .selectFrom("reputation_events")
    .select(["node_id", "rule", "period_key"])
    .where("rule", "in", PERIODIC_RULES)
    .where("period_key", "in", keys)
    .execute();
  const done = new Set(existing.map((e) => `${e.node_id}|${e.rule}|${e.period_key}`));

  const sessionsByNode = new Map<string, typeof sessions>();
  for (const s of sessions) {
    const list = sessionsByNode.get(s.node_id);
    if (list) list.push(s);
    else sessionsByNode.set(s.node_id, [s]);
  }

  const due: DueEvent[] = [];
  for (const node of nodes) {
    const mine: DueEvent[] = [];
    const add = (event: Omit<DueEvent, "nodeId" | "accountId">) => {
      if (!done.has(`${node.id}|${event.rule}|${event.periodKey}`))
        mine.push({ nodeId: node.id, accountId: node.account_id, ...event });
    };
    const connected = mergeIntervals(
      connectedIntervals(sessionsByNode.get(node.id) ?? [], node.last_seen_at.getTime(), nowMs),
    );
    const promised = parsePromisedHours(node.promised_hours);
    const promisedSince = node.promised_hours_since?.getTime();
    for (const hour of hours) {
      const label = hourLabel(hour);
      const connectedMs = coveredMs(connected, hour, hour + HOUR_MS);
      const evidence = { hour: label, connectedMinutes: Math.round(connectedMs / 600) / 100 };
      if (connectedMs >= UPTIME_MIN_CONNECTED_MS) {
        add({
          rule: "uptime",
          periodKey: `uptime:${label}`,
          endsAt: hour + HOUR_MS,
          delta: RULE_DELTAS.uptime,
          evidence,
        });
      }
      const isPromised =
        promised?.has(new Date(hour).getUTCHours()) && promisedSince !== undefined && promisedSince <= hour;
      if (isPromised && connectedMs < PROMISE_MIN_CONNECTED_MS) {
        add({
          rule: "broken_promise",
          periodKey: `promise:${label}`,
          endsAt: hour + HOUR_MS,
          delta: RULE_DELTAS.broken_promise,
          evidence,
        });
      }
    }
    for (const week of weeks) {
      if (node.first_seen_at.getTime() >= week + WEEK_MS) continue; // the node did not exist that week
      const label = isoWeekLabel(week);
      add({
        rule: "weekly_decay",
        periodKey: `decay:${label}`,
        endsAt: week + WEEK_MS,
        delta: decayDelta,
        evidence: { week: label },
      });
    }
    due.push(...mine.sort((a, b) => a.endsAt - b.endsAt));
  }
  return due;
}

/**
 * A node's sessions as intervals. An open session ends now at the latest, at last_seen_at plus a grace
 * (its coordinator may have died without closing it), and at the node's next session (an agent holds
 * one stream, so a newer session means the older connection is gone).
 */
function connectedIntervals(
  sessions: { connected_at: Date; disconnected_at: Date | null; next_connected_at: Date | null }[],
  lastSeenMs: number,
  nowMs: number,
): Interval[] {
  return sessions.map((s) => {
    const from = s.connected_at.getTime();
    if (s.disconnected_at) return { from, to: s.disconnected_at.getTime() };
    const next = s.next_connected_at?.getTime() ?? Infinity;
    return { from, to: Math.max(from, Math.min(nowMs, lastSeenMs + OPEN_SESSION_GRACE_MS, next)) };
  });
}

export interface ReputationScheduler {
  /** Settles after the first (catch-up) pass. */
  readonly ready: Promise<PassSummary>;
  /** Runs a pass now (after any pass in progress) and resolves with what it applied. */
  runNow(): Promise<PassSummary>;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

/** Runs a catch-up pass at once, then one pass every `intervalMs`; passes never overlap within a process. */
export function startReputationScheduler(options: {
  db: Kysely<Database>;
  logger: Logger;
  /** Milliseconds since the epoch; injectable so tests can move time. */
  now?: () => number;
  intervalMs?: number;
  /** A node's score changed (put it on the LiveNode, if this coordinator holds it). */
  onChange?: (nodeId: string, reputation: number) => void;
}): ReputationScheduler {
  const now = options.now ?? Date.now;
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  let chain: Promise<unknown> = Promise.resolve();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const pass = (): Promise<PassSummary> => {
    const run = chain.then(async () => {
      const started = now();
      const summary = await runReputationPass({
        db: options.db,
        nowMs: started,
        logger: options.logger,
        ...(options.onChange ? { onChange: options.onChange } : {}),
      });
      if (summary.uptime + summary.brokenPromise + summary.decay + summary.failed > 0) {
        options.logger.info({ ...summary, at: new Date(started).toISOString() }, "reputation periods applied");
      }
      return summary;
    });
    chain = run.catch(() => {});
    return run;
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      pass()
        .catch((err: unknown) => options.logger.error({ err }, "reputation pass failed"))
        .finally(schedule);
    }, intervalMs);
    timer.unref();
  };

  const ready = pass();
  ready.catch((err: unknown) => options.logger.error({ err }, "reputation catch-up pass failed")).finally(schedule);
  return {
    ready,
    runNow: pass,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await chain;
    },
  };
}
