// The session closer on both engines: a batch of ends from several nodes in one transaction, nodes offline only when
// no session of theirs is open (also when an old and a new session of one node meet in one batch), measurements
// written; and, through a database outage, ends that wait and are all written once it is back.
import type { Kysely } from "kysely";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDatabaseProxy } from "../../test/support/database-proxy.ts";
import { createTestDatabase, databaseSource, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { insertNode } from "../../test/support/node-rows.ts";
import { openDatabase } from "../db/connect.ts";
import type { Database } from "../db/schema.ts";
import type { MeasuredSnapshot } from "./measurements.ts";
import { SessionCloser } from "./session-closer.ts";
import { closeSession, openSession } from "./store.ts";

const snapshot = (speed: number[]): MeasuredSnapshot => ({ model: '["m","Q4_K_M",""]', speed, provenContext: 512 });

/** A node row marked online with one open session. */
async function onlineNode(db: Kysely<Database>): Promise<{ id: string; session: string }> {
  const { id } = await insertNode(db);
  await db.updateTable("nodes").set({ status: "online" }).where("id", "=", id).execute();
  return { id, session: await openSession(db, id, "test", "127.0.0.1") };
}

/** The nodes' statuses, in no particular order. */
async function statuses(db: Kysely<Database>, nodes: { id: string }[]): Promise<string[]> {
  const rows = await db
    .selectFrom("nodes")
    .select("status")
    .where(
      "id",
      "in",
      nodes.map((n) => n.id),
    )
    .execute();
  return rows.map((r) => r.status);
}

describe.each(testEngines())("session closer on $name", ({ engine }) => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase({ engine });
  });
  afterAll(async () => {
    await test?.close();
  });

  // a failed write is logged, not thrown: the test fails loudly on it instead
  const logger = pino({ level: "error" }, { write: (line: string) => expect.unreachable(line) });

  const nodeRow = (id: string) =>
    test.db
      .selectFrom("nodes")
      .select(["status", "tier", "measured", "last_seen_at"])
      .where("id", "=", id)
      .executeTakeFirstOrThrow();
  const sessionRow = (id: string) =>
    test.db
      .selectFrom("node_sessions")
      .select(["disconnected_at", "disconnect_reason"])
      .where("id", "=", id)
      .executeTakeFirstOrThrow();

  it("ends several nodes' sessions in one batch; a node whose newer session is open stays online", async () => {
    const closer = new SessionCloser(test.db, logger, { flushDelayMs: 60_000 });
    const [a, b, c] = [await onlineNode(test.db), await onlineNode(test.db), await onlineNode(test.db)];
    // b reconnected before its old stream ended (a replacing connection): its new session stays open
    const bNew = await openSession(test.db, b.id, "test", "127.0.0.1");
    // c reconnected and its new connection dropped too: both its sessions end in this batch
    const cNew = await openSession(test.db, c.id, "test", "127.0.0.1");
    const at = new Date(Date.now() + 1_000);
    closer.end({
      sessionId: a.session,
      nodeId: a.id,
      reason: "the node went away",
      at,
      measured: {
        tier: "PRO",
        snapshot: snapshot([31, 32]),
      },
    });
    closer.end({ sessionId: b.session, nodeId: b.id, reason: "replaced by a newer connection", at });
    closer.end({ sessionId: c.session, nodeId: c.id, reason: "replaced by a newer connection", at });
    closer.end({
      sessionId: cNew,
      nodeId: c.id,
      reason: "the node went away",
      at,
      measured: {
        tier: "BASIC",
        snapshot: snapshot([3]),
      },
    });
    expect(closer.waiting).toBe(4);
    expect(closer.unwrittenMeasurements(a.id)).toEqual(snapshot([31, 32]));
    await closer.flush();
    expect(closer.waiting).toBe(0);
    expect(closer.unwrittenMeasurements(a.id)).toBeUndefined();

    expect(await sessionRow(a.session)).toEqual({ disconnected_at: at, disconnect_reason: "the node went away" });
    expect(await sessionRow(b.session)).toMatchObject({ disconnected_at: at });
    expect(await sessionRow(bNew)).toMatchObject({ disconnected_at: null });
    expect(await sessionRow(c.session)).toMatchObject({ disconnected_at: at });
    expect(await sessionRow(cNew)).toMatchObject({ disconnected_at: at });
    expect(await nodeRow(a.id)).toMatchObject({
      status: "offline",
      tier: "PRO",
      measured: snapshot([31, 32]),
      last_seen_at: at,
    });
    expect(await nodeRow(b.id)).toMatchObject({ status: "online", tier: "MID", measured: null, last_seen_at: at });
    expect(await nodeRow(c.id)).toMatchObject({ status: "offline", tier: "BASIC", measured: snapshot([3]) });
  });

  it("ends every other session of a batch when the database refuses one end, and logs that one", async () => {
    const logged: Record<string, unknown>[] = [];
    const recording = pino({ level: "error" }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const closer = new SessionCloser(test.db, recording, { flushDelayMs: 60_000 });
    const nodes = [];
    for (let i = 0; i < 5; i++) nodes.push(await onlineNode(test.db));
    const at = new Date(Date.now() + 1_000);
    // an end PostgreSQL refuses (a session id that is no uuid), standing for any end the database will not take
    const refused = { sessionId: "not-a-session", nodeId: nodes[2]!.id, reason: "refused", at };
    for (const [i, node] of nodes.entries()) {
      if (i === 2) closer.end(refused);
      closer.end({ sessionId: node.session, nodeId: node.id, reason: "the node went away", at });
    }
    await closer.flush();
    expect(closer.waiting).toBe(0);
    for (const node of nodes)
      expect(await sessionRow(node.session)).toEqual({ disconnected_at: at, disconnect_reason: "the node went away" });
    expect(await statuses(test.db, nodes)).toEqual(nodes.map(() => "offline"));
    expect(logged.map((line) => [line.msg, line.sessionId])).toEqual([
      ["a node session end could not be written", "not-a-session"],
    ]);
  });

  it("leaves a session already ended as it was, and closeSession keeps a replaced node online", async () => {
    const closer = new SessionCloser(test.db, logger, { flushDelayMs: 1 });
    const node = await onlineNode(test.db);
    await closeSession(test.db, node.session, node.id, "first end");
    await test.db.updateTable("nodes").set({ status: "online" }).where("id", "=", node.id).execute();
    const newer = await openSession(test.db, node.id, "test", "127.0.0.1");
    closer.end({ sessionId: node.session, nodeId: node.id, reason: "second end", at: new Date() });
    await closer.flush();
    expect(await sessionRow(node.session)).toMatchObject({ disconnect_reason: "first end" });
    expect((await nodeRow(node.id)).status).toBe("online");
    await closeSession(test.db, newer, node.id, "gone");
    expect((await nodeRow(node.id)).status).toBe("offline");
  });

  it("closes a session whose end is stamped before its start (ms Date, µs now()) at its start", async () => {
    const node = await onlineNode(test.db);
    const closer = new SessionCloser(test.db, logger, { flushDelayMs: 1 });
    const { connected_at: started } = await test.db
      .selectFrom("node_sessions")
      .select("connected_at")
      .where("id", "=", node.session)
      .executeTakeFirstOrThrow();
    closer.end({ sessionId: node.session, nodeId: node.id, reason: "at once", at: new Date(started.getTime() - 5) });
    await closer.flush();
    const row = await sessionRow(node.session);
    expect(row).toMatchObject({ disconnect_reason: "at once" });
    expect((row.disconnected_at as Date).getTime()).toBe(started.getTime());
    expect((await nodeRow(node.id)).status).toBe("offline");
  });

  it("writes a storm of ends in batches of maxBatch, each node offline", async () => {
    const closer = new SessionCloser(test.db, logger, { flushDelayMs: 5, maxBatch: 40 });
    const nodes = await Promise.all(Array.from({ length: 100 }, () => onlineNode(test.db)));
    for (const node of nodes)
      closer.end({
        sessionId: node.session,
        nodeId: node.id,
        reason: "blip",
        at: new Date(),
        measured: {
          tier: "MID",
          snapshot: snapshot([node.id.length]),
        },
      });
    await closer.close(10_000);
    expect(await statuses(test.db, nodes)).toEqual(nodes.map(() => "offline"));
    const open = await test.db
      .selectFrom("node_sessions")
      .select("id")
      .where(
        "id",
        "in",
        nodes.map((n) => n.session),
      )
      .where("disconnected_at", "is", null)
      .execute();
    expect(open).toEqual([]);
  });
});

describe.skipIf(databaseSource().kind !== "postgres")("session closer through a database outage", () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(async () => {
    await test?.close();
  });

  it("keeps the ends waiting while the database is away and writes them all when it is back", async () => {
    const logs: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => logs.push(JSON.parse(line)) });
    const proxy = await startDatabaseProxy(test.url);
    const through = await openDatabase({ url: proxy.url, poolSize: 2, dataDir: "", logger });
    try {
      const closer = new SessionCloser(through.db, logger, {
        flushDelayMs: 5,
        pacing: { firstMs: 50, maxMs: 200, logEveryMs: 60_000 },
      });
      const nodes = [];
      for (let i = 0; i < 5; i++) nodes.push(await onlineNode(test.db));
      await proxy.cut();
      for (const node of nodes)
        closer.end({ sessionId: node.session, nodeId: node.id, reason: "blip", at: new Date() });
      const written = closer.flush();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(closer.waiting).toBe(5);
      expect(logs.some((line) => line.msg === "node session ends waiting for the database")).toBe(true);
      await proxy.restore();
      await written;
      expect(closer.waiting).toBe(0);
      expect(await statuses(test.db, nodes)).toEqual(nodes.map(() => "offline"));
      expect(logs.some((line) => line.level >= 50)).toBe(false);
    } finally {
      await through.close();
      await proxy.close();
    }
  });
});
