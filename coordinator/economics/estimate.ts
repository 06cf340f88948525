// What each account would be paid if the current month ended now: the month-to-date contributions split by the
// payout formula (payouts.ts). Nodes see their account's figure in every heartbeat ack; it is recomputed at most
// every `refreshMs`, never on a heartbeat's path: a heartbeat gets the last figure computed.
//
// A refresh reads only the work that ended since the last one, not the whole month: a task's weight is its node's
// score when it completed, which later events cannot change (they move the current score and the sum of the events
// after it alike), so a window once counted stays counted. Each UTC day's sums are kept apart, so that records that
// reach the database late (written after an outage) are counted by reading their days again (`landed`).
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/schema.ts";
import { monthOf, monthRange } from "./months.ts";
import { monthContributions, splitPool } from "./payouts.ts";

export interface EarningsEstimate {
  /** "YYYY-MM", UTC. */
  month: string;
  /** Units of MONTHLY_POOL_UNITS the account would get if the month ended now; 0 without contribution. */
  units: number;
}

/**
 * How far behind the clock the estimate counts, at most (and at most one refresh interval): work that ended this
 * recently is left to the next refresh, so that the task journal (which writes an ended task within milliseconds) has
 * written it before its window is read. Later records are still counted, through `landed`, at the price of reading
 * their days again.
 */
export const ESTIMATE_SETTLE_MS = 60_000;
const DAY_MS = 24 * 60 * 60 * 1000;

export class EarningsEstimator {
  #month = "";
  #byAccount = new Map<string, number>();
  #computedAt = -Infinity;
  #running: Promise<void> | undefined;
  /** The month the counted days belong to, each UTC day's sums by account, and how far they reach. */
  #counted = { month: "", until: 0, days: new Map<number, Map<string, number>>() };

  constructor(
    private readonly db: Kysely<Database>,
    private readonly pool: number,
    private readonly refreshMs: number,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** The last computed estimate for `accountId` (undefined before the first), starting a refresh when it is stale. */
  forAccount(accountId: string): EarningsEstimate | undefined {
    if (this.now() - this.#computedAt >= this.refreshMs) void this.refresh();
    if (this.#month === "") return undefined;
    return { month: this.#month, units: this.#byAccount.get(accountId) ?? 0 };
  }

  /** Recomputes now (one at a time); resolves when done. */
  refresh(): Promise<void> {
    this.#running ??= this.#compute().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /**
   * Records of work that ended at `earliestEnd` or later were just written (the task journal calls this for every
   * batch). When the estimate had already counted past that instant, the days from it on are read again at the
   * next refresh.
   */
  landed(earliestEnd: Date): void {
    const counted = this.#counted;
    const at = earliestEnd.getTime();
    if (counted.month === "" || !(at < counted.until)) return;
    const from = Math.max(dayOf(at), monthRange(counted.month).start.getTime());
    for (const day of counted.days.keys()) if (day >= from) counted.days.delete(day);
    counted.until = from;
  }

  async #compute(): Promise<void> {
    const at = this.now();
    const month = monthOf(at);
    try {
      await this.#countUntil(month, at - Math.min(ESTIMATE_SETTLE_MS, this.refreshMs));
      const totals = new Map<string, number>();
      for (const sums of this.#counted.days.values()) {
        for (const [account, contribution] of sums) totals.set(account, (totals.get(account) ?? 0) + contribution);
      }
      const contributions = [...totals].map(([accountId, contribution]) => ({ accountId, contribution }));
      const shares = splitPool(this.pool, contributions);
      this.#byAccount = new Map(shares.map((share) => [share.accountId, share.amount]));
      this.#month = month;
      this.#computedAt = at;
    } catch (err) {
      this.#computedAt = at; // try again after refreshMs, not on every heartbeat
      this.logger.error({ err }, "could not estimate this month's earnings");
    }
  }

  /** Counts the month's work that ended before `end` and is not counted yet, a UTC day at a time. */
  async #countUntil(month: string, end: number): Promise<void> {
    const start = monthRange(month).start.getTime();
    if (this.#counted.month !== month) this.#counted = { month, until: start, days: new Map() };
    const counted = this.#counted;
    while (counted.until < end) {
      const from = counted.until;
      const day = dayOf(from);
      const to = Math.min(end, day + DAY_MS);
      const window = await monthContributions(this.db, new Date(from), new Date(to));
      // `landed` moved the count back while the query ran: its days are read again at the next refresh
      if (counted.until !== from) return;
      const sums = counted.days.get(day) ?? new Map<string, number>();
      for (const { accountId, contribution } of window) sums.set(accountId, (sums.get(accountId) ?? 0) + contribution);
      counted.days.set(day, sums);
      counted.until = to;
    }
  }
}

/** The start of the UTC day `at` falls in. */
function dayOf(at: number): number {
  return Math.floor(at / DAY_MS) * DAY_MS;
}
