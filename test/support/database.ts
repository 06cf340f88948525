// Gives each test file its own migrated database: a fresh database on the run's server, or an in-memory PGlite.
import { randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import pg from "pg";
import { inject } from "vitest";
import { type DatabaseKind, openDatabase } from "../../coordinator/db/connect.ts";
import { migrateToLatest } from "../../coordinator/db/migrator.ts";
import type { Database } from "../../coordinator/db/schema.ts";
import type { DatabaseSource } from "./global-setup.ts";

export interface TestDatabase {
  db: Kysely<Database>;
  /** Connects to this same database: hand it to a coordinator process as DATABASE_URL. */
  url: string;
  kind: DatabaseKind;
  /** Closes the connections and drops the database (server) or discards it (PGlite). */
  close(): Promise<void>;
}

export interface TestDatabaseOptions {
  /** "pglite" forces an in-memory PGlite whatever the run's source is (to prove both engines). */
  engine?: "source" | "pglite";
  /** false leaves the database empty, for tests of the migrations themselves. */
  migrate?: boolean;
}

// Small: a test file rarely needs more, and many files run at once against one server.
const POOL_SIZE = 4;

/** The PostgreSQL source global-setup chose for this run. */
export function databaseSource(): DatabaseSource {
  return inject("databaseSource");
}

/**
 * The engines a suite should run on to prove both paths: the run's source and, when that is a
 * server, an in-memory PGlite as well (PGlite runs everywhere).
 */
export function testEngines(): { engine: "source" | "pglite"; name: string }[] {
  const source = databaseSource();
  if (source.kind === "pglite") return [{ engine: "source", name: "PGlite" }];
  return [
    { engine: "source", name: "PostgreSQL server" },
    { engine: "pglite", name: "PGlite" },
  ];
}

export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const source = databaseSource();
  const created =
    options.engine === "pglite" || source.kind === "pglite"
      ? await createPgliteDatabase()
      : await createServerDatabase(source.url);
  if (options.migrate !== false) {
    try {
      await migrateToLatest(created.db);
    } catch (error) {
      await created.close();
      throw error;
    }
  }
  return created;
}

async function createPgliteDatabase(): Promise<TestDatabase> {
  const url = "memory://";
  const opened = await openDatabase({ url, poolSize: 1, dataDir: "" });
  return { db: opened.db, url, kind: "pglite", close: opened.close };
}

async function createServerDatabase(serverUrl: string): Promise<TestDatabase> {
  // Random hex only, so the name is a safe identifier (CREATE DATABASE cannot take a bound parameter).
  const name = `iris_test_${randomBytes(6).toString("hex")}`;
  await administer(serverUrl, `CREATE DATABASE ${name}`);
  const url = withDatabase(serverUrl, name);
  let opened;
  try {
    opened = await openDatabase({ url, poolSize: POOL_SIZE, dataDir: "" });
  } catch (error) {
    await administer(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    throw error;
  }
  const db = opened.db;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await opened.close();
      // FORCE also ends connections a coordinator process under test may still hold.
      await administer(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    })());
  return { db, url, kind: "postgres", close };
}

/** Runs one statement on the server's own database (the one in the source URL). */
async function administer(serverUrl: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

function withDatabase(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
