// Hundreds of real node connections dropping at once (a network blip, also while the database is away), and a
// coordinator shutting down with its nodes connected: every session ends in the database and every node goes
// offline, with no error logged.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { startDatabaseProxy } from "./support/database-proxy.ts";
import { createTestDatabase, databaseSource, type TestDatabase } from "./support/database.ts";
import { startScriptedNode, type ScriptedNode } from "./support/scripted-node.ts";

const STORM = 400;

const env = {
  // a small pool, as a busy coordinator's is: one transaction per ended stream would queue hundreds on it
  DATABASE_POOL_SIZE: "3",
  // registering hundreds of nodes at once on a loaded test machine
  NODE_REGISTER_TIMEOUT_MS: "30000",
  // every test node connects from 127.0.0.1
  MAX_CONNECTIONS_PER_ADDRESS: "0",
};

// the test reads the coordinator's rows through its own connection: a server database (an in-memory PGlite is the
// coordinator's alone)
describe.skipIf(databaseSource().kind !== "postgres")("node streams ending all at once", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.close();
  });

  async function connect(coordinator: TestCoordinator, prefix: string, count: number): Promise<ScriptedNode[]> {
    const accountKey = await newAccountKey(coordinator.url);
    const nodes: ScriptedNode[] = [];
    // in waves, so registering does not starve the test machine
    for (let i = 0; i < count; i += 100) {
      const wave = Array.from({ length: Math.min(100, count - i) }, (_, j) =>
        startScriptedNode({ baseUrl: coordinator.url, accountKey, nodeId: `${prefix}-${i + j}`, heartbeats: false }),
      );
      await Promise.all(wave.map((node) => node.registered));
      nodes.push(...wave);
    }
    return nodes;
  }
  const openSessions = async (prefix: string) =>
    (
      await database.db
        .selectFrom("node_sessions")
        .select(database.db.fn.countAll<string>().as("count"))
        .where("node_id", "like", `${prefix}-%`)
        .where("disconnected_at", "is", null)
        .executeTakeFirstOrThrow()
    ).count;
  const statuses = async (prefix: string) =>
    Object.fromEntries(
      (
        await database.db
          .selectFrom("nodes")
          .select(["status", database.db.fn.countAll<string>().as("count")])
          .where("id", "like", `${prefix}-%`)
          .groupBy("status")
          .execute()
      ).map((row) => [row.status, Number(row.count)]),
    );
  const errors = (coordinator: TestCoordinator) =>
    coordinator.logs.filter((line) => typeof line.level === "number" && line.level >= 50);

  it(`ends the sessions of ${STORM} nodes that drop at once and takes them all offline`, async () => {
    const coordinator = await startTestCoordinator(env, { database });
    try {
      const nodes = await connect(coordinator, "storm", STORM);
      expect(await statuses("storm")).toEqual({ online: STORM });
      for (const node of nodes) node.kill();
      await Promise.all(nodes.map((node) => node.ended));
      const deadline = Date.now() + 15_000;
      while (Number(await openSessions("storm")) > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(Number(await openSessions("storm"))).toBe(0);
      expect(await statuses("storm")).toEqual({ offline: STORM });
      const sessions = await database.db
        .selectFrom("node_sessions")
        .select(["disconnect_reason"])
        .where("node_id", "like", "storm-%")
        .execute();
      expect(sessions).toHaveLength(STORM);
      expect(sessions.filter((s) => s.disconnect_reason === null)).toEqual([]);
      expect(errors(coordinator)).toEqual([]);
    } finally {
      await coordinator.close();
    }
  }, 60_000);

  it("keeps the ends of nodes that drop while the database is away, and writes them when it is back", async () => {
    const proxy = await startDatabaseProxy(database.url);
    const coordinator = await startTestCoordinator({ ...env, DATABASE_URL: proxy.url }, { database });
    try {
      const nodes = await connect(coordinator, "outage", 200);
      await proxy.cut();
      for (const node of nodes) node.kill();
      await Promise.all(nodes.map((node) => node.ended));
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(Number(await openSessions("outage"))).toBe(200);
      // the operator's gauge shows them waiting
      const gauge = async () =>
        Number(
          /^iris_node_session_ends_waiting (\d+)$/m.exec(await (await fetch(`${coordinator.url}/metrics`)).text())?.[1],
        );
      expect(await gauge()).toBe(200);
      await proxy.restore();
      const deadline = Date.now() + 15_000;
      while (Number(await openSessions("outage")) > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(Number(await openSessions("outage"))).toBe(0);
      expect(await statuses("outage")).toEqual({ offline: 200 });
      expect(await gauge()).toBe(0);
      expect(coordinator.logs.some((line) => line.msg === "node session ends waiting for the database")).toBe(true);
      expect(errors(coordinator)).toEqual([]);
    } finally {
      await coordinator.close();
      await proxy.close();
    }
  }, 60_000);

  it("writes the ends of the streams a shutdown closes before the database is closed", async () => {
    const coordinator = await startTestCoordinator(env, { database });
    const nodes = await connect(coordinator, "shutdown", 50);
    expect(await statuses("shutdown")).toEqual({ online: 50 });
    await coordinator.close();
    await Promise.all(nodes.map((node) => node.ended));
    expect(Number(await openSessions("shutdown"))).toBe(0);
    expect(await statuses("shutdown")).toEqual({ offline: 50 });
    expect(errors(coordinator)).toEqual([]);
  }, 30_000);
});
