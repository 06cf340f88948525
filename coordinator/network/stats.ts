// The network's figures for GetStats and WatchStats: live ones from the registry, task totals from the database.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Kysely } from "kysely";
import type { Tier } from "../../gen/iris/v1/common_pb.ts";
import type { NetworkStatsSchema } from "../../gen/iris/v1/network_pb.ts";
import type { Database } from "../db/schema.ts";
import { NODE_TIERS, type NodeTier } from "../../common/vocabulary.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import { tierToProto } from "../../common/vocabulary.ts";

export interface StatsSources {
  db: Kysely<Database>;
  registry: NodeRegistry;
  orchestrator: { readonly queueLength: number };
  /** Tokens relayed per second lately (a ThroughputMeter's rate); 0 when not wired. */
  tokensPerSecond?: () => number;
  now?: () => number;
}

interface TaskTotals {
  completed: number;
  failed: number;
}

export type NetworkStatsInit = MessageInitShape<typeof NetworkStatsSchema>;

/**
 * A count of the totals is not read again sooner than this many times its own last duration: however large the
 * tasks table grows and however often callers ask (GetStats is public), counting takes at most a twentieth of the
 * database's time. While a count takes under `maxAgeMs / COUNT_DUTY`, callers get the age they asked for.
 */
const COUNT_DUTY = 20;

/**
 * Takes samples of the figures. The task totals are the only database read, and every caller shares it:
 * a sample reuses totals read less than `maxAgeMs` ago (or still being read), so any number of watchers
 * with interval I cause at most one count query per I together, and no more than COUNT_DUTY allows.
 */
export class NetworkStatsSampler {
  #totals: { readAt: number; value: Promise<TaskTotals> } | undefined;
  /** How long the last count that answered took (ms). */
  #countMs = 0;
  readonly #now: () => number;

  constructor(private readonly sources: StatsSources) {
    this.#now = sources.now ?? Date.now;
  }

  async sample(maxAgeMs: number): Promise<NetworkStatsInit> {
    const totals = await this.#taskTotals(maxAgeMs);
    const online = new Map<NodeTier, number>(NODE_TIERS.map((tier) => [tier, 0]));
    let running = 0;
    for (const node of this.sources.registry.nodes()) {
      if (!node.connected) continue; // its stream has ended; the registry drops it in a moment
      online.set(node.tier, online.get(node.tier)! + 1);
      running += node.tasks.size;
    }
    const nodesByTier = NODE_TIERS.map((tier): { tier: Tier; online: number } => ({
      tier: tierToProto[tier],
      online: online.get(tier)!,
    }));
    return {
      nodesByTier,
      nodesOnline: nodesByTier.reduce((sum, t) => sum + t.online, 0),
      tasksCompleted: BigInt(totals.completed),
      tasksFailed: BigInt(totals.failed),
      tasksRunning: running,
      queueLength: this.sources.orchestrator.queueLength,
      tokensPerSecond: this.sources.tokensPerSecond?.() ?? 0,
      atUnixMs: BigInt(this.#now()),
    };
  }

  #taskTotals(maxAgeMs: number): Promise<TaskTotals> {
    const now = this.#now();
    const maxAge = Math.max(maxAgeMs, COUNT_DUTY * this.#countMs);
    if (this.#totals && now - this.#totals.readAt < maxAge) return this.#totals.value;
    const value = countTasks(this.sources.db).then((totals) => {
      this.#countMs = Math.max(0, this.#now() - now);
      return totals;
    });
    const entry = { readAt: now, value };
    this.#totals = entry;
    // a failed read is not cached: the next sample tries again
    value.catch(() => {
      if (this.#totals === entry) this.#totals = undefined;
    });
    return value;
  }
}

/**
 * Users' requests by outcome: tasks without a parent that are not canaries (a divided request's parts and a
 * single one's spot check are its children). tasks_requests_status_idx (0006) covers exactly these rows.
 */
async function countTasks(db: Kysely<Database>): Promise<TaskTotals> {
  const rows = await db
    .selectFrom("tasks")
    .select((eb) => ["status", eb.fn.countAll<number>().as("count")])
    .where("status", "in", ["completed", "failed"])
    .where("parent_id", "is", null)
    .where("classifier", "is distinct from", "canary")
    .groupBy("status")
    .execute();
  const count = (status: string) => Number(rows.find((row) => row.status === status)?.count ?? 0);
  return { completed: count("completed"), failed: count("failed") };
}
