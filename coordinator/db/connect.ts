// Opens the coordinator's database: PostgreSQL through a pg pool, or an embedded PGlite, typed alike.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { Kysely, PGliteDialect, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { PgliteWorkerClient } from "./pglite-worker-client.ts";
import { PgliteWorkerDialect } from "./pglite-worker-dialect.ts";
import { PreparingClient } from "./prepared.ts";
import type { Database } from "./schema.ts";
import { parsers, pgTypes } from "./type-parsers.ts";

export type DatabaseKind = "postgres" | "pglite";

export interface DatabaseLogger {
  info: (obj: object, msg?: string) => void;
  warn?: (obj: object, msg?: string) => void;
}

export interface OpenDatabaseOptions {
  /**
   * postgres:// or postgresql:// for a server; memory:// for a throw-away in-memory PGlite; unset or empty for PGlite
   * on disk.
   */
  url?: string;
  /** Connections in the pg pool (PGlite always has exactly one). */
  poolSize: number;
  /** The coordinator's data directory; the on-disk PGlite lives in `<dataDir>/pglite`. */
  dataDir: string;
  /**
   * Where PGlite runs its SQL: "worker" (the default) in a worker thread of its own, off the thread that serves
   * requests; "main" in the calling thread, as Kysely's PGliteDialect does (kept to measure the difference).
   */
  pgliteThread?: PgliteThread;
  logger?: DatabaseLogger;
}

export type PgliteThread = "worker" | "main";

let defaultPgliteThread: PgliteThread = "worker";

/**
 * Changes where PGlite runs when `pgliteThread` is not given. Only for benchmarks that run the coordinator
 * unchanged with the old in-thread PGlite, from a preloaded module (bench/pglite-main-thread.ts).
 */
export function setDefaultPgliteThread(thread: PgliteThread): void {
  defaultPgliteThread = thread;
}

export interface OpenDatabase {
  db: Kysely<Database>;
  kind: DatabaseKind;
  /** Destroys the Kysely instance, which ends the pg pool or closes PGlite. Safe to call twice. */
  close(): Promise<void>;
}

const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;

/** The URL with any password replaced by `***`, fit for logs and terminal output. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    if (parsed.searchParams.has("password")) parsed.searchParams.set("password", "***");
    return parsed.toString();
  } catch {
    return "<unparsable database URL>";
  }
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<OpenDatabase> {
  const url = options.url?.trim() ?? "";
  if (!Number.isInteger(options.poolSize) || options.poolSize < 1) {
    throw new Error(`database pool size must be a positive integer, got ${options.poolSize}`);
  }
  if (url.startsWith("postgres://") || url.startsWith("postgresql://")) {
    return openPostgres(url, options);
  }
  if (url === "" || url.startsWith("memory://")) {
    return openPglite(url === "" ? pgliteDirectory(options.dataDir) : undefined, options);
  }
  throw new Error(`unsupported database URL ${redactUrl(url)}: use postgres://, postgresql:// or memory://`);
}

async function openPostgres(url: string, options: OpenDatabaseOptions): Promise<OpenDatabase> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize,
    types: pgTypes,
    // statements marked with prepared() are parsed and planned once per connection
    Client: PreparingClient,
    // a server that accepts TCP but never answers would otherwise hold a request forever
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    // a transaction whose client vanished mid-way is ended by the server, so its locks and its commit status
    // (which the task journal asks after a lost COMMIT reply) do not stay "in progress" for hours
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
  });
  const warn = (obj: object, msg: string) => {
    const logger = options.logger;
    if (logger?.warn) logger.warn(obj, msg);
    else logger?.info(obj, msg);
  };
  // An idle client can lose its server (restart, DROP DATABASE ... FORCE); without a listener the
  // pool's 'error' event would crash the process. The next query reconnects.
  pool.on("error", (error) => warn({ err: error.message }, "idle PostgreSQL connection failed"));
  // pg-pool removes its own 'error' listener while a client is checked out (inside a transaction, between
  // queries), and pg emits 'error' on the client when its backend is terminated: with no listener that ends the
  // process. This one stays for the client's whole life; the query in flight, if any, fails on its own and the
  // broken client is discarded on release.
  pool.on("connect", (client) => {
    client.on("error", (error) => warn({ err: error.message }, "PostgreSQL connection failed"));
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  await checkConnection(db, redactUrl(url));
  options.logger?.info({ kind: "postgres", url: redactUrl(url), poolSize: options.poolSize }, "database opened");
  return { db, kind: "postgres", close: closeOnce(db) };
}

async function openPglite(dir: string | undefined, options: OpenDatabaseOptions): Promise<OpenDatabase> {
  if (dir) mkdirSync(dir, { recursive: true });
  const thread = options.pgliteThread ?? defaultPgliteThread;
  let dialect;
  try {
    dialect =
      thread === "worker"
        ? new PgliteWorkerDialect(await PgliteWorkerClient.start(dir))
        : new PGliteDialect({ pglite: await PGlite.create({ ...(dir ? { dataDir: dir } : {}), parsers }) });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open database ${dir ?? "memory://"}: ${reason}`, { cause: error });
  }
  const db = new Kysely<Database>({ dialect });
  await checkConnection(db, dir ?? "memory://");
  options.logger?.info({ kind: "pglite", dataDir: dir ?? "memory", thread }, "database opened");
  return { db, kind: "pglite", close: closeOnce(db) };
}

/** Fails fast, with the database named, instead of on the first real query. `where` must be log-safe. */
async function checkConnection(db: Kysely<Database>, where: string): Promise<void> {
  try {
    await sql`select 1`.execute(db);
  } catch (error) {
    await db.destroy().catch(() => {});
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open database ${where}: ${reason}`, { cause: error });
  }
}

function closeOnce(db: Kysely<Database>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => (closing ??= db.destroy());
}

/** Where the on-disk PGlite lives for a data directory (exported so CLIs can print it). */
export function pgliteDirectory(dataDir: string): string {
  return join(resolve(dataDir), "pglite");
}
