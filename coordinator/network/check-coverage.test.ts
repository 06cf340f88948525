// Spot-check coverage counted from task rows: answers, checked answers, the last check and checks run, in a day.
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/support/database.ts";
import type { Database } from "../db/schema.ts";
import { spotCheckCoverage } from "./check-coverage.ts";

const NOW = Date.UTC(2030, 0, 10, 12);
const at = (minutesAgo: number) => new Date(NOW - minutesAgo * 60_000);

describe("spotCheckCoverage", () => {
  let test: TestDatabase;
  let db: Kysely<Database>;

  beforeAll(async () => {
    test = await createTestDatabase();
    db = test.db;
    const account = await db
      .insertInto("accounts")
      .values({ key_hash: "c".repeat(64) })
      .returning("id")
      .executeTakeFirstOrThrow();
    for (const id of ["top", "new", "idle"]) {
      await db
        .insertInto("nodes")
        .values({
          id,
          account_id: account.id,
          tier: "MID",
          model_name: "m",
          parameter_count: 7e9,
          tokens_per_second: 12,
          gpus: sql`'[]'::jsonb`,
          agent_version: "0.1.0",
          reputation: 100,
          last_seen_at: new Date(NOW),
        })
        .execute();
    }
    const task = (id: string, values: object) => ({
      id,
      difficulty: "SIMPLE" as const,
      status: "completed" as const,
      classifier: "rules",
      ...values,
    });
    const ids = Array.from({ length: 12 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`);
    await db
      .insertInto("tasks")
      .values([
        // top: three answers in the window, two of them checked (one check failed and does not count)
        task(ids[0]!, { node_id: "top", created_at: at(60) }),
        task(ids[1]!, { node_id: "top", created_at: at(30) }),
        task(ids[2]!, { node_id: "top", created_at: at(10) }),
        task(ids[3]!, {
          node_id: "new",
          parent_id: ids[0],
          classifier: "spot_check",
          created_at: at(59),
          completed_at: at(58),
        }),
        task(ids[4]!, {
          node_id: "new",
          parent_id: ids[1],
          classifier: "spot_check",
          created_at: at(29),
          completed_at: at(28),
        }),
        task(ids[5]!, {
          node_id: "new",
          parent_id: ids[2],
          classifier: "spot_check",
          status: "failed",
          failure_reason: "timeout",
          created_at: at(9),
        }),
        // not answers: older than a day, a canary, a part of a divided request, a failed task
        task(ids[6]!, { node_id: "top", created_at: at(25 * 60) }),
        task(ids[7]!, { node_id: "top", classifier: "canary", created_at: at(5) }),
        task(ids[8]!, { node_id: "top", division_mode: "consensus", created_at: at(5) }),
        task(ids[9]!, { node_id: "top", status: "failed", failure_reason: "lost", created_at: at(5) }),
        // new answered once, unchecked
        task(ids[10]!, { node_id: "new", created_at: at(3) }),
      ])
      .execute();
  });
  afterAll(() => test?.close());

  it("counts each node's answers, the checked ones, the last check and the checks it ran", async () => {
    const coverage = await spotCheckCoverage(db, ["top", "new", "idle"], NOW);
    expect(coverage.get("top")).toEqual({
      windowHours: 24,
      answers: 3,
      checked: 2,
      lastCheckedUnixMs: BigInt(at(28).getTime()),
      checksRun: 0,
    });
    expect(coverage.get("new")).toEqual({
      windowHours: 24,
      answers: 1,
      checked: 0,
      lastCheckedUnixMs: 0n,
      checksRun: 2,
    });
    expect(coverage.get("idle")).toEqual({
      windowHours: 24,
      answers: 0,
      checked: 0,
      lastCheckedUnixMs: 0n,
      checksRun: 0,
    });
    expect(await spotCheckCoverage(db, [], NOW)).toEqual(new Map());
  });
});
