// Statements marked prepared() become named prepared statements on each PostgreSQL connection (what the server's
// pg_prepared_statements shows), parsed once; others stay unnamed; a failed parse or a full connection still runs.
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, databaseSource, type TestDatabase } from "../../test/support/database.ts";
import { openDatabase, type OpenDatabase } from "./connect.ts";
import { MAX_PREPARED_PER_CONNECTION, prepared } from "./prepared.ts";

describe.skipIf(databaseSource().kind !== "postgres")("prepared statements on a PostgreSQL connection", () => {
  let test: TestDatabase;
  let opened: OpenDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
    // one connection, so every statement below meets the same session's prepared statements
    opened = await openDatabase({ url: test.url, poolSize: 1, dataDir: "" });
  });
  afterAll(async () => {
    await opened?.close();
    await test?.close();
  });

  const preparedHere = async () => {
    const { rows } = await sql<{ name: string; statement: string }>`
      SELECT name, statement FROM pg_prepared_statements ORDER BY name`.execute(opened.db);
    return rows;
  };

  it("prepares a marked statement once and runs it again by name with new parameters", async () => {
    const double = (n: number) => prepared(sql<{ twice: number }>`SELECT ${n}::int * 2 AS twice`).execute(opened.db);
    expect((await double(2)).rows).toEqual([{ twice: 4 }]);
    expect((await double(21)).rows).toEqual([{ twice: 42 }]);
    const statements = (await preparedHere()).filter((row) => row.statement.includes("* 2 AS twice"));
    expect(statements).toHaveLength(1);
    expect(statements[0]!.name).toMatch(/^iris_\d+$/);
  });

  it("leaves an unmarked statement unnamed", async () => {
    await sql`SELECT ${1}::int + 7 AS unmarked_sum`.execute(opened.db);
    expect((await preparedHere()).some((row) => row.statement.includes("unmarked_sum"))).toBe(false);
  });

  it("parses a name again after its first parse failed inside an aborted transaction", async () => {
    const marked = (n: number) => prepared(sql<{ v: number }>`SELECT ${n}::int AS after_abort`);
    await expect(
      opened.db.transaction().execute(async (tx) => {
        await sql`SELECT 1 / 0`.execute(tx).catch(() => {});
        await marked(1).execute(tx); // "current transaction is aborted": the parse never happened
      }),
    ).rejects.toThrow(/aborted/);
    expect((await marked(5).execute(opened.db)).rows).toEqual([{ after_abort: 5 }]);
    expect((await preparedHere()).some((row) => row.statement.includes("AS after_abort"))).toBe(true);
  });

  it(`names at most ${MAX_PREPARED_PER_CONNECTION} texts per connection and runs the rest unnamed`, async () => {
    for (let i = 0; i < MAX_PREPARED_PER_CONNECTION + 5; i++) {
      const { rows } = await prepared(sql<{ v: number }>`SELECT ${i}::int AS ${sql.ref(`many_${i}`)}`).execute(
        opened.db,
      );
      expect(Object.values(rows[0]!)).toEqual([i]);
    }
    expect(await preparedHere()).toHaveLength(MAX_PREPARED_PER_CONNECTION);
  });
});

describe("prepared statements on PGlite", () => {
  it("runs a marked statement as a plain one", async () => {
    const pglite = await openDatabase({ url: "memory://", poolSize: 1, dataDir: "" });
    try {
      const { rows } = await prepared(sql<{ v: number }>`SELECT ${3}::int + 4 AS v`).execute(pglite.db);
      expect(rows).toEqual([{ v: 7 }]);
    } finally {
      await pglite.close();
    }
  });
});
