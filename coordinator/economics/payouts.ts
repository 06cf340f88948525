// The monthly pool: each account's reputation-weighted contribution, paid out once per month into the ledger.
//
// Formula, for a UTC month M = [start, end):
//   contribution(account) = Σ completion_tokens(t) × weight(t) / 100
//     over every task row t with status 'completed', a node_id and completed_at in M, credited to the
//     account that owned t's node when it did the work (the account_id on t's task_completed reputation
//     event, else the node's current account). Parts of divided tasks (subtasks, consensus copies,
//     context chunks) count like any other row: each is tokens a node generated.
//   weight(t) = max(10, reputation of t's node when t completed), where that reputation is the node's
//     current score minus the deltas of its reputation events created after completed_at (events at the
//     same instant count as earlier). So reputation 100 counts a token once, 150 one and a half times.
//   amounts = splitPool(pool, contributions): largest remainder, Σ amounts = pool exactly (split.ts).
// Failed, cancelled and unfinished tasks earn nothing; accounts with no contribution get no row. A month
// with no contribution at all still gets its payout_runs row (total 0, no payouts): the month is closed
// and its pool is not carried over.
import { type Kysely, sql } from "kysely";
import type { Database } from "../db/schema.ts";
import { monthRange } from "./months.ts";
import { splitPool, type Contribution, type Share } from "./split.ts";

export { splitPool } from "./split.ts";

export type MonthPayout = Share;

export interface DistributeOptions {
  /** "YYYY-MM", a UTC month that has ended. */
  month: string;
  /** Units to distribute: a safe integer >= 0. */
  pool: number;
  /** The present, for the "month has ended" check; defaults to the clock. */
  now?: Date;
}

/**
 * Distributes a finished month's pool, at most once: the payout_runs row is claimed first, in the same
 * transaction as the payouts, so a second run (even a concurrent one, which waits for the first to commit)
 * finds the row and returns the stored payouts with created: false.
 */
export async function distributeMonth(
  db: Kysely<Database>,
  options: DistributeOptions,
): Promise<{ created: boolean; payouts: MonthPayout[] }> {
  const { month, pool } = options;
  const { start, end } = monthRange(month);
  if (!Number.isSafeInteger(pool) || pool < 0) throw new RangeError(`pool must be a safe integer >= 0, got ${pool}`);
  const now = options.now ?? new Date();
  // tasks of an unfinished month could still complete and change everyone's share
  if (now.getTime() < end.getTime())
    throw new RangeError(`month ${month} has not ended yet (ends ${end.toISOString()})`);

  const created = await db.transaction().execute(async (tx) => {
    const claimed = await tx
      .insertInto("payout_runs")
      .values({ month, pool, total_contribution: 0 })
      .onConflict((oc) => oc.column("month").doNothing())
      .returning("month")
      .executeTakeFirst();
    if (!claimed) return undefined;
    const shares = splitPool(pool, await monthContributions(tx, start, end));
    const total = shares.reduce((sum, s) => sum + s.contribution, 0);
    await tx.updateTable("payout_runs").set({ total_contribution: total }).where("month", "=", month).execute();
    if (shares.length > 0) {
      await tx
        .insertInto("payouts")
        .values(
          shares.map((s) => ({
            month,
            account_id: s.accountId,
            amount: s.amount,
            contribution: s.contribution,
            share: s.share,
          })),
        )
        .execute();
    }
    return shares;
  });
  return created ? { created: true, payouts: created } : { created: false, payouts: await monthPayouts(db, month) };
}

/**
 * Each account's contribution for the work that ended in [start, end) per the formula at the top of this file, by
 * account id. Any window gives the same weights as the whole month (a task's weight is its node's score when it
 * ended), so windows add up: the earnings estimate reads one at a time (estimate.ts).
 */
export async function monthContributions(db: Kysely<Database>, start: Date, end: Date): Promise<Contribution[]> {
  const { rows } = await sql<{ account_id: string; weighted_tokens: number }>`
    WITH work AS (
      SELECT t.node_id, t.completed_at AS at, t.completion_tokens AS tokens,
             COALESCE(
               (SELECT e.account_id FROM reputation_events e
                 WHERE e.task_id = t.id AND e.node_id = t.node_id AND e.rule = 'task_completed'
                 ORDER BY e.id LIMIT 1),
               n.account_id) AS account_id
        FROM tasks t JOIN nodes n ON n.id = t.node_id
       WHERE t.status = 'completed' AND t.completion_tokens > 0
         AND t.completed_at >= ${start} AND t.completed_at < ${end}
    ),
    timeline AS (
      -- the work and the same nodes' reputation changes since the window began (later ones too); an array, not a
      -- subquery, so that the events are read by (node_id, created_at), not scanned whole, however old the table
      SELECT node_id, at, 0 AS ord, tokens, 0::double precision AS delta, account_id FROM work
      UNION ALL
      SELECT e.node_id, e.created_at, 1, 0, e.delta, NULL FROM reputation_events e
       WHERE e.created_at >= ${start} AND e.node_id = ANY(ARRAY(SELECT DISTINCT node_id FROM work))
    ),
    weighted AS (
      -- newest first per node, so the running sum at a task is the change since it completed
      SELECT node_id, ord, tokens, account_id,
             SUM(delta) OVER (PARTITION BY node_id ORDER BY at DESC, ord) AS later
        FROM timeline
    )
    SELECT w.account_id, SUM(w.tokens * GREATEST(10, n.reputation - w.later)) AS weighted_tokens
      FROM weighted w JOIN nodes n ON n.id = w.node_id
     WHERE w.ord = 0
     GROUP BY w.account_id
     ORDER BY w.account_id
  `.execute(db);
  return rows.map((row) => ({ accountId: row.account_id, contribution: Number(row.weighted_tokens) / 100 }));
}

/** A month's stored payouts, by account id. */
async function monthPayouts(db: Kysely<Database>, month: string): Promise<MonthPayout[]> {
  const rows = await db
    .selectFrom("payouts")
    .select(["account_id", "amount", "contribution", "share"])
    .where("month", "=", month)
    .orderBy("account_id")
    .execute();
  return rows.map((row) => ({
    accountId: row.account_id,
    amount: row.amount,
    contribution: Number(row.contribution),
    share: Number(row.share),
  }));
}

export interface LedgerEntry {
  month: string;
  accountId: string;
  amount: number;
  contribution: number;
}

/** The ledger, newest month first, largest amount first within a month; `month` narrows it to one month. */
export async function listPayouts(
  db: Kysely<Database>,
  options: { month?: string; limit: number },
): Promise<LedgerEntry[]> {
  let query = db
    .selectFrom("payouts")
    .select(["month", "account_id", "amount", "contribution"])
    .orderBy("month", "desc")
    .orderBy("amount", "desc")
    .orderBy("account_id")
    .limit(options.limit);
  if (options.month) query = query.where("month", "=", options.month);
  const rows = await query.execute();
  return rows.map((row) => ({
    month: row.month,
    accountId: row.account_id,
    amount: row.amount,
    contribution: Number(row.contribution),
  }));
}

/** The months that already have a run, from `first` on ("YYYY-MM" text sorts like months). */
export async function distributedMonths(db: Kysely<Database>, first: string): Promise<Set<string>> {
  const rows = await db.selectFrom("payout_runs").select("month").where("month", ">=", first).execute();
  return new Set(rows.map((row) => row.month));
}

/** When the first task a node completed finished, or undefined before there is one. */
export async function firstCompletionAt(db: Kysely<Database>): Promise<Date | undefined> {
  const row = await db
    .selectFrom("tasks")
    .select((eb) => eb.fn.min("completed_at").as("first"))
    .where("status", "=", "completed")
    .where("node_id", "is not", null)
    .executeTakeFirst();
  return row?.first ?? undefined;
}
