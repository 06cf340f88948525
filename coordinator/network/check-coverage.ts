// Spot-check coverage per node (NodeInfo.spot_checks): how many of a node's recent answers another node re-ran, read
// from the task rows every coordinator sharing the database writes (a check's row names the checked task as parent).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { sql, type Kysely } from "kysely";
import type { SpotCheckCoverageSchema } from "../../gen/iris/v1/network_pb.ts";
import type { Database } from "../db/schema.ts";

export type SpotCheckCoverageInit = MessageInitShape<typeof SpotCheckCoverageSchema>;

/** The window coverage is counted over: a day, as rate limits are. */
const COVERAGE_WINDOW_HOURS = 24;
/** Rows that are the network's own checks, not answers to users. */
const CHECK_CLASSIFIERS = ["spot_check", "canary"];

/** Coverage of each of `nodeIds` over the last COVERAGE_WINDOW_HOURS (nodes with no rows get zeros). */
export async function spotCheckCoverage(
  db: Kysely<Database>,
  nodeIds: readonly string[],
  now = Date.now(),
): Promise<Map<string, SpotCheckCoverageInit>> {
  const coverage = new Map<string, SpotCheckCoverageInit>(
    nodeIds.map((id) => [
      id,
      { windowHours: COVERAGE_WINDOW_HOURS, answers: 0, checked: 0, lastCheckedUnixMs: 0n, checksRun: 0 },
    ]),
  );
  if (nodeIds.length === 0) return coverage;
  const since = new Date(now - COVERAGE_WINDOW_HOURS * 3_600_000);
  const answered = await db
    .selectFrom("tasks as t")
    .leftJoin("tasks as c", (join) =>
      join.onRef("c.parent_id", "=", "t.id").on("c.classifier", "=", "spot_check").on("c.status", "=", "completed"),
    )
    .select((eb) => [
      "t.node_id",
      sql<string>`count(distinct ${eb.ref("t.id")})`.as("answers"),
      sql<string>`count(distinct ${eb.ref("c.parent_id")})`.as("checked"),
      eb.fn.max("c.completed_at").as("last_checked"),
    ])
    .where("t.node_id", "in", nodeIds)
    .where("t.created_at", ">=", since)
    .where("t.parent_id", "is", null)
    .where("t.division_mode", "=", "single")
    .where("t.status", "=", "completed")
    .where((eb) => eb.or([eb("t.classifier", "is", null), eb("t.classifier", "not in", CHECK_CLASSIFIERS)]))
    .groupBy("t.node_id")
    .execute();
  for (const row of answered) {
    const entry = coverage.get(row.node_id!)!;
    entry.answers = Number(row.answers);
    entry.checked = Number(row.checked);
    entry.lastCheckedUnixMs = row.last_checked ? BigInt(new Date(row.last_checked).getTime()) : 0n;
  }
  const ran = await db
    .selectFrom("tasks")
    .select((eb) => ["node_id", eb.fn.countAll<string>().as("checks")])
    .where("node_id", "in", nodeIds)
    .where("classifier", "=", "spot_check")
    .where("status", "=", "completed")
    .where("created_at", ">=", since)
    .groupBy("node_id")
    .execute();
  for (const row of ran) coverage.get(row.node_id!)!.checksRun = Number(row.checks);
  return coverage;
}
