// What each account would be paid if the current month ended now: the month-to-date contributions split by the
// payout formula (payouts.ts). Nodes see their account's figure in every heartbeat ack; it is recomputed at most
// every `refreshMs` (one query), never on a heartbeat's path: a heartbeat gets the last figure computed.
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

export class EarningsEstimator {
  #month = "";
  #byAccount = new Map<string, number>();
  #computedAt = -Infinity;
  #running: Promise<void> | undefined;

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

  async #compute(): Promise<void> {
    const at = this.now();
    const month = monthOf(at);
    try {
      const shares = splitPool(this.pool, await monthContributions(this.db, monthRange(month).start, new Date(at)));
      this.#byAccount = new Map(shares.map((share) => [share.accountId, share.amount]));
      this.#month = month;
      this.#computedAt = at;
    } catch (err) {
      this.#computedAt = at; // try again after refreshMs, not on every heartbeat
      this.logger.error({ err }, "could not estimate this month's earnings");
    }
  }
}
