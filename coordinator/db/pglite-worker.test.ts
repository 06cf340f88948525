// PGlite in a worker thread: transactions hold the one session, errors keep PostgreSQL's fields, types survive the
// thread hop, a dead worker reads as "database unavailable", close() ends the thread, and the on-disk mode persists.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { isAbortedTransactionError, Kysely, sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "./connect.ts";
import { databaseUnavailable, isDatabaseUnavailable } from "./faults.ts";
import { PgliteWorkerClient } from "./pglite-worker-client.ts";
import { PgliteWorkerDialect } from "./pglite-worker-dialect.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startDatabase() {
  const client = await PgliteWorkerClient.start(undefined);
  return { client, db: new Kysely<any>({ dialect: new PgliteWorkerDialect(client) }) };
}

describe("PGlite in a worker thread", () => {
  let db: Kysely<any>;
  beforeAll(async () => {
    db = (await startDatabase()).db;
    await sql`create table counters (id int primary key, value int not null)`.execute(db);
    await sql`create table kinds (id int8, amount numeric, at timestamptz, data bytea, doc jsonb, label text)`.execute(
      db,
    );
  });
  afterAll(async () => {
    await db?.destroy();
  });

  it("runs concurrent read-modify-write transactions one at a time", async () => {
    await db.insertInto("counters").values({ id: 1, value: 0 }).execute();
    const increment = () =>
      db.transaction().execute(async (tx) => {
        const { value } = await tx.selectFrom("counters").select("value").where("id", "=", 1).executeTakeFirstOrThrow();
        await sleep(5); // another transaction interleaving here would lose an increment
        await tx
          .updateTable("counters")
          .set({ value: value + 1 })
          .where("id", "=", 1)
          .execute();
      });
    await Promise.all(Array.from({ length: 20 }, increment));
    const { value } = await db.selectFrom("counters").select("value").where("id", "=", 1).executeTakeFirstOrThrow();
    expect(value).toBe(20);
  });

  it("queues statements outside a transaction until it ends, then runs them in order", async () => {
    await db.insertInto("counters").values({ id: 2, value: 0 }).execute();
    const order: string[] = [];
    let outside: Promise<unknown> | undefined;
    await db.transaction().execute(async (tx) => {
      await tx.updateTable("counters").set({ value: 1 }).where("id", "=", 2).execute();
      outside = db
        .selectFrom("counters")
        .select("value")
        .where("id", "=", 2)
        .executeTakeFirstOrThrow()
        .then((row) => order.push(`outside saw ${row.value}`));
      await sleep(30);
      await tx.updateTable("counters").set({ value: 2 }).where("id", "=", 2).execute();
      order.push("transaction done");
    });
    await outside;
    expect(order).toEqual(["transaction done", "outside saw 2"]);
  });

  it("rejects with PostgreSQL's error fields, as pg's DatabaseError", async () => {
    await db.insertInto("counters").values({ id: 3, value: 0 }).execute();
    const error = await db
      .insertInto("counters")
      .values({ id: 3, value: 0 })
      .execute()
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(pg.DatabaseError);
    expect(error).toMatchObject({
      code: "23505",
      constraint: "counters_pkey",
      table: "counters",
      detail: "Key (id)=(3) already exists.",
    });
    expect(isDatabaseUnavailable(error)).toBe(false);
    // the session is fine afterwards
    expect((await sql<{ one: number }>`select 1 as one`.execute(db)).rows).toEqual([{ one: 1 }]);
  });

  it("rolls back a failed transaction and reports a COMMIT that rolled back", async () => {
    const failed = db.transaction().execute(async (tx) => {
      await tx.insertInto("counters").values({ id: 4, value: 0 }).execute();
      await tx.insertInto("counters").values({ id: 4, value: 0 }).execute();
    });
    await expect(failed).rejects.toMatchObject({ code: "23505" });
    const swallowed = db.transaction().execute(async (tx) => {
      await tx.insertInto("counters").values({ id: 5, value: 0 }).execute();
      await tx
        .insertInto("counters")
        .values({ id: 5, value: 0 })
        .execute()
        .catch(() => {});
    });
    expect(isAbortedTransactionError(await swallowed.catch((err: unknown) => err))).toBe(true);
    const left = await db.selectFrom("counters").select("id").where("id", "in", [4, 5]).execute();
    expect(left).toEqual([]);
  });

  it("returns the same JavaScript types as the pg driver", async () => {
    const at = new Date("2025-03-01T12:34:56.789Z");
    const data = Buffer.from([0, 1, 2, 255]);
    await db
      .insertInto("kinds")
      .values({
        id: 2 ** 53 - 1,
        amount: "12345678901234567890.123",
        at,
        data,
        doc: JSON.stringify({ a: [1, "x"] }),
        label: "Robert'); --",
      })
      .execute();
    await db
      .insertInto("kinds")
      .values({ id: null, amount: null, at: null, data: null, doc: null, label: null })
      .execute();
    const [row, empty] = await db
      .selectFrom("kinds")
      .selectAll()
      .orderBy("id", (ob) => ob.asc().nullsLast())
      .execute();
    if (!row) throw new Error("no row");
    expect(row).toEqual({
      id: 2 ** 53 - 1,
      amount: "12345678901234567890.123",
      at,
      data,
      doc: { a: [1, "x"] },
      label: "Robert'); --",
    });
    expect(row.at).toBeInstanceOf(Date);
    expect(Buffer.isBuffer(row.data)).toBe(true);
    expect(empty).toEqual({ id: null, amount: null, at: null, data: null, doc: null, label: null });
    await expect(sql`select 9007199254740993::int8 as big`.execute(db)).rejects.toThrow(
      /outside JavaScript's safe integer range/,
    );
  });

  it("counts affected rows like the pg driver", async () => {
    const result = await db.updateTable("counters").set({ value: 7 }).where("id", "in", [1, 2]).executeTakeFirst();
    expect(result.numUpdatedRows).toBe(2n);
  });

  it("runs a thousand pipelined statements without losing one", async () => {
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => sql<{ i: number }>`select ${i}::int as i`.execute(db)),
    );
    expect(results.map((r) => r.rows[0]!.i)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
});

describe("a PGlite worker that dies", () => {
  it("fails the statements it owed and every later one as unavailable, without hanging", async () => {
    const { client, db } = await startDatabase();
    const inFlight = sql`select pg_sleep(0.3)`.execute(db).catch((err: unknown) => err);
    const transaction = db
      .transaction()
      .execute(async (tx) => {
        await sleep(50);
        await sql`select 1`.execute(tx);
      })
      .catch((err: unknown) => err);
    await sleep(20);
    await client.terminate();
    for (const error of [
      await inFlight,
      await transaction,
      await sql`select 1`.execute(db).catch((err: unknown) => err),
    ]) {
      expect(isDatabaseUnavailable(error), String(error)).toBe(true);
      expect(databaseUnavailable(error).code).toBe(Code.Unavailable);
    }
    await db.destroy(); // closing a dead worker's database does not hang either
  });
});

describe("closing", () => {
  it("answers what was sent before close, ends the worker, then refuses (not as an outage)", async () => {
    const { client, db } = await startDatabase();
    await sql`select 1`.execute(db); // Kysely destroys only a driver it has started
    const before = client.query("select 42 as n", []);
    const closed = db.destroy();
    expect((await before).rows).toEqual([{ n: 42 }]);
    await closed;
    await db.destroy(); // twice is fine
    for (const error of [
      await sql`select 1`.execute(db).catch((err: unknown) => err),
      await client.query("select 1", []).catch((err: unknown) => err),
    ]) {
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/closed|destroyed/);
      expect(isDatabaseUnavailable(error)).toBe(false);
    }
  });
});

describe("openDatabase with PGlite", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "iris-pglite-worker-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("keeps the on-disk database across a close and a reopen (worker)", async () => {
    const first = await openDatabase({ url: "", poolSize: 1, dataDir });
    await sql`create table kept (note text)`.execute(first.db);
    await sql`insert into kept values ('still here')`.execute(first.db);
    await first.close();
    const second = await openDatabase({ url: "", poolSize: 1, dataDir });
    try {
      expect((await sql`select note from kept`.execute(second.db)).rows).toEqual([{ note: "still here" }]);
    } finally {
      await second.close();
    }
  });

  it("still runs in the calling thread when asked to", async () => {
    const opened = await openDatabase({ url: "memory://", poolSize: 1, dataDir: "", pgliteThread: "main" });
    try {
      const { rows } = await sql<{ data: Buffer; at: Date }>`select '\\x01'::bytea as data, now() as at`.execute(
        opened.db,
      );
      expect(Buffer.isBuffer(rows[0]!.data)).toBe(true);
      expect(rows[0]!.at).toBeInstanceOf(Date);
    } finally {
      await opened.close();
    }
  });
});
