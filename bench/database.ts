// The benchmark's own database: a fresh database on DATABASE_URL's server (dropped afterwards), else an
// embedded PGlite in a temporary data directory (deleted afterwards), as `npm start` would use. It is migrated
// and given one account before any coordinator starts, so that the coordinators can list its key in
// UNLIMITED_ACCOUNT_KEYS: the benchmark's thousands of chats must not meet the per-day chat limits.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { createAccount } from "../coordinator/accounts/store.ts";
import { openDatabase, redactUrl } from "../coordinator/db/connect.ts";
import { migrateToLatest } from "../coordinator/db/migrator.ts";

export interface BenchDatabase {
  /** Environment for the coordinator child: DATABASE_URL or DATA_DIR, and UNLIMITED_ACCOUNT_KEYS. */
  env: Record<string, string>;
  /** The account every node registers with and every client chats as (exempt from chat limits). */
  accountKey: string;
  /** One line for the report: which engine, where. */
  label: string;
  drop(): Promise<void>;
}

export async function createBenchDatabase(serverUrl: string | undefined): Promise<BenchDatabase> {
  const created = await createEmpty(serverUrl);
  try {
    const opened = await openDatabase({
      url: created.env.DATABASE_URL ?? "",
      dataDir: created.env.DATA_DIR ?? "",
      poolSize: 1,
    });
    try {
      await migrateToLatest(opened.db);
      const { key } = await createAccount(opened.db);
      return { ...created, accountKey: key, env: { ...created.env, UNLIMITED_ACCOUNT_KEYS: key } };
    } finally {
      await opened.close();
    }
  } catch (err) {
    await created.drop();
    throw err;
  }
}

async function createEmpty(serverUrl: string | undefined): Promise<Omit<BenchDatabase, "accountKey">> {
  if (!serverUrl) {
    const dataDir = mkdtempSync(join(tmpdir(), "iris-bench-data-"));
    return {
      env: { DATA_DIR: dataDir },
      label: `embedded PGlite (DATABASE_URL unset; data under ${dataDir}, in the coordinator's process)`,
      drop: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  // Random hex only, so the name is a safe identifier (CREATE DATABASE takes no bound parameter).
  const name = `iris_bench_${randomBytes(6).toString("hex")}`;
  await administer(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const server = await administer(serverUrl, "SHOW server_version");
  let dropping: Promise<void> | undefined;
  return {
    env: { DATABASE_URL: url.toString() },
    label:
      `PostgreSQL ${server} server at ${redactUrl(serverUrl).replace(/\/[^/]*$/, "")} (fresh database ${name}, ` +
      `dropped afterwards)`,
    // FORCE also ends connections a coordinator that did not exit cleanly may still hold.
    drop: () => (dropping ??= administer(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => {})),
  };
}

/** Runs one statement on the server's own database; returns the first column of the first row. */
async function administer(serverUrl: string, statement: string): Promise<string> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const result = await client.query(statement);
    const row = result.rows[0] as Record<string, unknown> | undefined;
    return row ? String(Object.values(row)[0]) : "";
  } finally {
    await client.end();
  }
}
