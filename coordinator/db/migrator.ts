// Applies migrations/*.sql in name order through Kysely's Migrator, on PostgreSQL and PGlite alike.
/*
 * Rules for migration files:
 * - Named NNNN_snake_case.sql (0001_init.sql, 0002_...); applied in name order, each once, forward only.
 *   An applied file is never edited; a change is a new file.
 * - Each file is split into statements here, because PGlite's `query` (what Kysely's PGlite driver
 *   uses) runs exactly one statement. The splitter understands -- and nested block comments, '...'
 *   and E'...' strings, "quoted identifiers" and $tag$ dollar quotes, so a semicolon inside any of
 *   those is safe.
 * - All pending files run in ONE transaction (both engines have transactional DDL): if any statement
 *   fails, nothing of that run is applied. So no CREATE INDEX CONCURRENTLY, VACUUM or other
 *   statements that refuse to run inside a transaction block.
 * - Core PostgreSQL 15 only (PGlite is 17): no extensions.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Kysely, sql } from "kysely";
import { type Migration, type MigrationProvider, Migrator } from "kysely/migration";
import type { DatabaseLogger } from "./connect.ts";

/** migrations/ at the repository root, found from this file so any working directory works. */
const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../migrations/", import.meta.url));

const MIGRATION_FILE = /^(\d{4}_[a-z0-9_]+)\.sql$/;

/** Migration names (file names without .sql) in the order they apply. */
export async function migrationNames(folder: string = MIGRATIONS_FOLDER): Promise<string[]> {
  const files = (await readdir(folder)).filter((file) => file.endsWith(".sql")).sort();
  return files.map((file) => {
    const match = MIGRATION_FILE.exec(file);
    // A misnamed file would otherwise be skipped silently and its schema never created.
    if (!match?.[1]) throw new Error(`migration file ${file} is not named NNNN_snake_case.sql`);
    return match[1];
  });
}

class SqlFileMigrationProvider implements MigrationProvider {
  constructor(private readonly folder: string) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const migrations: Record<string, Migration> = {};
    for (const name of await migrationNames(this.folder)) {
      const statements = splitSqlStatements(await readFile(join(this.folder, `${name}.sql`), "utf8"));
      migrations[name] = {
        // biome-ignore lint/suspicious/noExplicitAny: a migration runs on whatever schema the database has so far
        async up(db: Kysely<any>) {
          for (const statement of statements) {
            // Trusted file content, no parameters: the one place where sql.raw is the right tool.
            await sql.raw(statement).execute(db);
          }
        },
      };
    }
    return migrations;
  }
}

/**
 * Brings the database to the newest schema. Returns the names applied by this call (empty when it
 * was already current); throws an Error naming the migration that failed.
 */
export async function migrateToLatest(
  // biome-ignore lint/suspicious/noExplicitAny: the migrator works before and across schema versions
  db: Kysely<any>,
  logger?: DatabaseLogger,
  folder: string = MIGRATIONS_FOLDER,
): Promise<string[]> {
  const migrator = new Migrator({ db, provider: new SqlFileMigrationProvider(folder) });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results.find((result) => result.status === "Error")?.migrationName;
    const reason = error instanceof Error ? error.message : String(error);
    const what = failed ? `migration ${failed} failed` : "migrations failed";
    throw new Error(`${what} (nothing from this run was applied): ${reason}`, { cause: error });
  }
  const applied = results.filter((result) => result.status === "Success").map((result) => result.migrationName);
  for (const name of applied) logger?.info({ migration: name }, "migration applied");
  return applied;
}

/**
 * Splits SQL text into single statements at top-level semicolons. Comments are kept inside their
 * statement (PostgreSQL ignores them); statements that are only comments or blank are dropped.
 */
export function splitSqlStatements(text: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let hasCode = false; // whether the current statement has anything besides comments and blanks
  let i = 0;
  while (i < text.length) {
    const char = text[i] ?? "";
    const pair = text.slice(i, i + 2);
    if (pair === "--") {
      const newline = text.indexOf("\n", i);
      i = newline === -1 ? text.length : newline + 1;
      continue;
    }
    if (pair === "/*") {
      i = skipBlockComment(text, i);
      continue;
    }
    if (char === ";") {
      if (hasCode) statements.push(text.slice(start, i).trim());
      i += 1;
      start = i;
      hasCode = false;
      continue;
    }
    if (!/\s/.test(char)) hasCode = true;
    if (char === "'") {
      // E'...' allows backslash escapes; the E is the previous character and starts a token.
      const escapes = /[eE]/.test(text[i - 1] ?? "") && !/[\w$]/.test(text[i - 2] ?? "");
      i = skipQuoted(text, i, "'", escapes);
    } else if (char === '"') {
      i = skipQuoted(text, i, '"', false);
    } else if (char === "$" && !/[\w$]/.test(text[i - 1] ?? "")) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i, i + 64))?.[0];
      if (tag) {
        const close = text.indexOf(tag, i + tag.length);
        if (close === -1) throw new Error(`unterminated dollar-quoted string starting with ${tag}`);
        i = close + tag.length;
      } else {
        i += 1; // a $1-style parameter
      }
    } else {
      i += 1;
    }
  }
  if (hasCode) statements.push(text.slice(start).trim());
  return statements;
}

function skipBlockComment(text: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < text.length) {
    const pair = text.slice(i, i + 2);
    if (pair === "/*") {
      depth += 1;
      i += 2;
    } else if (pair === "*/") {
      depth -= 1;
      i += 2;
      if (depth === 0) return i;
    } else {
      i += 1;
    }
  }
  throw new Error("unterminated block comment in SQL");
}

function skipQuoted(text: string, from: number, quote: string, backslashEscapes: boolean): number {
  let i = from + 1;
  while (i < text.length) {
    if (backslashEscapes && text[i] === "\\") {
      i += 2;
    } else if (text[i] === quote) {
      if (text[i + 1] === quote)
        i += 2; // doubled quote is an escaped quote
      else return i + 1;
    } else {
      i += 1;
    }
  }
  throw new Error(`unterminated ${quote === "'" ? "string" : "quoted identifier"} in SQL`);
}
