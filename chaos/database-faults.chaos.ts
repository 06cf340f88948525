// Reliability: the coordinator's database backends terminated every second under 20 streams, then the database
// unreachable for 10 s; the coordinator process lives through both and every record is written once it is back.
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newAccountKey } from "../test/support/coordinator.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "../test/support/coordinator-process.ts";
import { startDatabaseProxy, type DatabaseProxy } from "../test/support/database-proxy.ts";
import { createTestDatabase, databaseSource, type TestDatabase } from "../test/support/database.ts";
import { startScriptedNode, type ScriptedNode } from "../test/support/scripted-node.ts";
import { chatLoad, leftovers, report, type Tally } from "./load.ts";

const OUTAGE_MS = Number(process.env.CHAOS_OUTAGE_MS ?? 10_000);
const server = databaseSource().kind === "postgres";

describe.skipIf(!server)("database faults (needs a PostgreSQL server: PGlite has no backends to kill)", () => {
  let database: TestDatabase;
  let proxy: DatabaseProxy;
  let coordinator: CoordinatorProcess;
  let nodes: ScriptedNode[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    proxy = await startDatabaseProxy(database.url);
    coordinator = await startCoordinatorProcess({ DATABASE_URL: proxy.url, HEARTBEAT_INTERVAL_MS: "500" });
    const accountKey = await newAccountKey(coordinator.url);
    nodes = Array.from({ length: 4 }, (_, i) =>
      startScriptedNode({
        baseUrl: coordinator.url,
        accountKey,
        nodeId: `db-chaos-${i}`,
        maxConcurrentTasks: 8,
        script: () => ({ tokens: Array.from({ length: 10 }, (_, t) => ` t${t}`), delayMs: 30 }),
      }),
    );
    await Promise.all(nodes.map((n) => n.registered));
  }, 60_000);
  afterAll(async () => {
    for (const node of nodes) node.kill();
    await coordinator?.kill();
    await proxy?.close();
    await database?.close();
  });

  /** Waits until no task row is open (the journal has caught up), up to `ms`; returns how long it took. */
  async function settled(ms: number): Promise<number> {
    const start = Date.now();
    while (Date.now() - start < ms) {
      const open = await database.db
        .selectFrom("tasks")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("status", "in", ["queued", "assigned", "streaming"])
        .executeTakeFirstOrThrow();
      if (Number(open.n) === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return Date.now() - start;
  }

  async function check(name: string, tally: Tally, note: string): Promise<void> {
    const drainMs = await settled(60_000);
    const left = await leftovers(database.db, tally);
    report(name, tally, left, `${note}; records caught up ${drainMs} ms after the load stopped`);
    expect(coordinator.alive).toBe(true);
    expect(tally.lost).toBe(0);
    expect(left.dangling).toBe(0);
    expect(left.outcomesLost).toBe(0);
    expect(left.recordsLost).toBe(0);
    expect(left.recordsInterrupted).toBe(0);
    expect(tally.completed).toBeGreaterThan(0);
  }

  it("backends terminated every second for 10 s under 20 streams: the process lives, 0 lost, 0 dangling", async () => {
    let running = true;
    const load = chatLoad({
      url: () => coordinator.url,
      concurrency: 20,
      running: () => running,
      clientTimeoutMs: 60_000,
    });
    let terminated = 0;
    for (let i = 0; i < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const killed = await sql<{ n: number }>`
        SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()`.execute(database.db);
      terminated += killed.rows[0]?.n ?? 0;
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    running = false;
    await check("database backends terminated ×10 (1/s)", await load, `${terminated} backends terminated`);
  }, 180_000);

  it(`the database unreachable for ${OUTAGE_MS / 1000} s under 20 streams: the process lives, 0 lost, 0 ` +
    `dangling`, async () => {
    let running = true;
    const load = chatLoad({
      url: () => coordinator.url,
      concurrency: 20,
      running: () => running,
      clientTimeoutMs: 60_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
    await proxy.restore();
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    running = false;
    await check(`database outage ${OUTAGE_MS / 1000} s (connections refused)`, await load, "");
  }, 180_000);
});
