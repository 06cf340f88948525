// Proves the migrator on every engine the run reaches: fresh databases, reruns, failures, and statement splitting.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { migrateToLatest, migrationNames, splitSqlStatements } from "./migrator.ts";

const TABLES = [
  "accounts",
  "chat_admissions",
  "coordinator_instances",
  "journal_batches",
  "login_failures",
  "node_sessions",
  "nodes",
  "payout_runs",
  "payouts",
  "reputation_events",
  "task_events",
  "tasks",
  "users",
];
const MIGRATOR_TABLES = ["kysely_migration", "kysely_migration_lock"];

async function tableNames(db: Kysely<any>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`.execute(db);
  return rows.map((row) => row.name);
}

/** Everything a migration could change about the schema, as comparable text. */
async function schemaSnapshot(db: Kysely<any>): Promise<unknown> {
  const columns = await sql`
    select table_name, column_name, data_type, is_nullable, column_default
    from information_schema.columns where table_schema = 'public'
    order by table_name, column_name`.execute(db);
  const constraints = await sql`
    select conrelid::regclass::text as tbl, conname, pg_get_constraintdef(oid) as def
    from pg_constraint where connamespace = 'public'::regnamespace order by 1, 2`.execute(db);
  const indexes = await sql`
    select indexname, indexdef from pg_indexes where schemaname = 'public' order by indexname`.execute(db);
  return { columns: columns.rows, constraints: constraints.rows, indexes: indexes.rows };
}

describe.each(testEngines())("migrations on $name", ({ engine }) => {
  let shared: TestDatabase;
  beforeAll(async () => {
    shared = await createTestDatabase({ engine });
  });
  afterAll(async () => {
    await shared?.close();
  });

  it("apply every file in order on an empty database and create every table", async () => {
    const fresh = await createTestDatabase({ engine, migrate: false });
    try {
      expect(await tableNames(fresh.db)).toEqual([]);
      const names = await migrationNames();
      expect(names[0]).toBe("0001_init");
      expect(names).toEqual([...names].sort());

      expect(await migrateToLatest(fresh.db)).toEqual(names);

      expect(await tableNames(fresh.db)).toEqual([...TABLES, ...MIGRATOR_TABLES].sort());
      const recorded = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(fresh.db);
      expect(recorded.rows.map((row) => row.name)).toEqual(names);
    } finally {
      await fresh.close();
    }
  });

  it("apply nothing and change nothing on a second run", async () => {
    const before = await schemaSnapshot(shared.db);
    expect(await migrateToLatest(shared.db)).toEqual([]);
    expect(await schemaSnapshot(shared.db)).toEqual(before);
    const recorded = await sql<{ n: number }>`select count(*) as n from kysely_migration`.execute(shared.db);
    expect(recorded.rows[0]?.n).toBe((await migrationNames()).length);
  });

  it("create the indexes the obvious queries need", async () => {
    const { rows } = await sql<{ indexdef: string }>`
      select indexdef from pg_indexes where schemaname = 'public' and tablename = 'tasks'`.execute(shared.db);
    const defs = rows.map((row) => row.indexdef).join("\n");
    expect(defs).toMatch(/\(status, created_at\)/);
    expect(defs).toMatch(/\(node_id, created_at\)/);
    expect(defs).toMatch(/\(created_at DESC\)/);
  });

  it("name the failed migration and apply nothing from a failed run", async () => {
    const folder = await mkdtemp(join(tmpdir(), "iris-migrations-"));
    const fresh = await createTestDatabase({ engine, migrate: false });
    try {
      await writeFile(join(folder, "0001_first.sql"), "CREATE TABLE first_table (id integer);\n");
      await writeFile(
        join(folder, "0002_broken.sql"),
        "CREATE TABLE second_table (id integer);\nSELECT * FROM no_such_table;\n",
      );
      await expect(migrateToLatest(fresh.db, undefined, folder)).rejects.toThrow(/migration 0002_broken failed/);
      // One transaction per run: the good file before the broken one is rolled back too.
      expect(await tableNames(fresh.db)).toEqual(MIGRATOR_TABLES);
      const recorded = await sql<{ n: number }>`select count(*) as n from kysely_migration`.execute(fresh.db);
      expect(recorded.rows[0]?.n).toBe(0);
    } finally {
      await fresh.close();
      await rm(folder, { recursive: true, force: true });
    }
  });

  it("refuse a migrations folder holding a misnamed .sql file", async () => {
    const folder = await mkdtemp(join(tmpdir(), "iris-migrations-"));
    try {
      await writeFile(join(folder, "0001_first.sql"), "SELECT 1;\n");
      await writeFile(join(folder, "second.sql"), "SELECT 2;\n");
      await expect(migrationNames(folder)).rejects.toThrow(/second\.sql is not named NNNN_snake_case\.sql/);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe("splitSqlStatements", () => {
  const cases: { name: string; text: string; expected: string[] }[] = [
    { name: "plain statements", text: "SELECT 1; SELECT 2;", expected: ["SELECT 1", "SELECT 2"] },
    { name: "no trailing semicolon", text: "SELECT 1;\nSELECT 2", expected: ["SELECT 1", "SELECT 2"] },
    { name: "blank and empty statements", text: " ;\n;SELECT 1;;  \n", expected: ["SELECT 1"] },
    { name: "semicolon in a string", text: "SELECT 'a;b'; SELECT 2", expected: ["SELECT 'a;b'", "SELECT 2"] },
    {
      name: "doubled quote in a string",
      text: "SELECT 'it''s; fine'; SELECT 2",
      expected: ["SELECT 'it''s; fine'", "SELECT 2"],
    },
    {
      name: "E-string backslash escape",
      text: "SELECT E'a\\';b'; SELECT 2",
      expected: ["SELECT E'a\\';b'", "SELECT 2"],
    },
    { name: "quoted identifier", text: 'SELECT 1 AS "x;y"; SELECT 2', expected: ['SELECT 1 AS "x;y"', "SELECT 2"] },
    {
      name: "line comment",
      text: "SELECT 1 -- not; here\n; SELECT 2",
      expected: ["SELECT 1 -- not; here", "SELECT 2"],
    },
    {
      name: "nested block comment",
      text: "SELECT /* a /* b; */ c; */ 1; SELECT 2",
      expected: ["SELECT /* a /* b; */ c; */ 1", "SELECT 2"],
    },
    { name: "comment-only tail", text: "SELECT 1;\n-- the end;\n/* done; */\n", expected: ["SELECT 1"] },
    {
      name: "dollar quotes",
      text: "DO $body$ BEGIN PERFORM 1; END $body$; SELECT $$a;b$$",
      expected: ["DO $body$ BEGIN PERFORM 1; END $body$", "SELECT $$a;b$$"],
    },
    {
      name: "positional parameter is not a dollar quote",
      text: "SELECT $1; SELECT 2",
      expected: ["SELECT $1", "SELECT 2"],
    },
  ];
  it.each(cases)("$name", ({ text, expected }) => {
    expect(splitSqlStatements(text)).toEqual(expected);
  });

  it("rejects unterminated strings, comments and dollar quotes", () => {
    expect(() => splitSqlStatements("SELECT 'oops; SELECT 2")).toThrow(/unterminated string/);
    expect(() => splitSqlStatements("SELECT 1 /* oops; ")).toThrow(/unterminated block comment/);
    expect(() => splitSqlStatements("SELECT $x$ oops;")).toThrow(/unterminated dollar-quoted/);
  });
});
