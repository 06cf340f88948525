// Runs the monthly distribution by itself: at start and every hour, each finished month without a run yet.
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/schema.ts";
import { addMonths, monthOf, monthsFrom } from "./months.ts";
import { distributedMonths, distributeMonth, firstCompletionAt } from "./payouts.ts";

const HOUR_MS = 60 * 60 * 1000;
/** A month is distributed only this long after it ended, so the write-behind task journal has caught up. */
const SETTLE_MS = 15 * 60 * 1000;
/** Months distributed per pass at most; a long backlog (a coordinator off for years) drains hour by hour. */
const MAX_MONTHS_PER_PASS = 12;

export interface MonthlyPayoutsOptions {
  db: Kysely<Database>;
  logger: Logger;
  /** Units per month (config.economics.monthlyPool). */
  pool: number;
  now?: () => number;
  intervalMs?: number;
}

export interface MonthlyPayouts {
  /** One pass now (the timer runs the same); resolves with the months it distributed. */
  catchUp(): Promise<string[]>;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

export function startMonthlyPayouts(options: MonthlyPayoutsOptions): MonthlyPayouts {
  const { db, logger, pool } = options;
  const now = options.now ?? Date.now;
  // found once: the first completion never moves, and until there is one there is nothing to pay
  let firstMonth: string | undefined;
  let running: Promise<string[]> | undefined;

  async function pass(): Promise<string[]> {
    if (firstMonth === undefined) {
      const first = await firstCompletionAt(db);
      if (!first) return [];
      firstMonth = monthOf(first);
    }
    const lastFinished = addMonths(monthOf(now() - SETTLE_MS), -1);
    const done = await distributedMonths(db, firstMonth);
    const due = monthsFrom(firstMonth, lastFinished).filter((month) => !done.has(month));
    const distributed: string[] = [];
    for (const month of due.slice(0, MAX_MONTHS_PER_PASS)) {
      const result = await distributeMonth(db, { month, pool, now: new Date(now()) });
      // created false: another coordinator instance got there first
      if (result.created) {
        distributed.push(month);
        logger.info({ month, pool, accounts: result.payouts.length }, "monthly pool distributed");
      }
    }
    if (due.length > MAX_MONTHS_PER_PASS)
      logger.warn({ left: due.length - MAX_MONTHS_PER_PASS }, "payout backlog continues next pass");
    return distributed;
  }

  function catchUp(): Promise<string[]> {
    // one pass at a time: a slow pass must not overlap the next tick
    running ??= pass().finally(() => {
      running = undefined;
    });
    return running;
  }

  function tick(): void {
    catchUp().catch((err: unknown) => logger.error({ err }, "monthly payouts failed; retrying next hour"));
  }

  tick();
  const timer = setInterval(tick, options.intervalMs ?? HOUR_MS);
  timer.unref();
  return {
    catchUp,
    async stop() {
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
