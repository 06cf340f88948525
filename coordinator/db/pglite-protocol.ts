// The messages between the coordinator's thread and the PGlite worker thread, and how errors cross between them.
import pg from "pg";

/** One statement to run, in the order received; `close` ends the database after everything sent before it. */
export type WorkerRequest = { id: number; sql: string; parameters: readonly unknown[] } | { id: number; close: true };

export type WorkerReply =
  | { id: number; rows: Record<string, unknown>[]; command?: string; affectedRows?: number; bytea?: string[] }
  | { id: number; error: SerializedError }
  | { id: number; closed: true };

/** The worker's first message: PGlite is open, or it could not be. */
export type WorkerHello = { ready: true } | { fatal: SerializedError };

export type SerializedError = { message: string; name: string } & Partial<Record<(typeof FIELDS)[number], string>>;

// PostgreSQL's error fields (what pg's DatabaseError and PGlite's error both carry); never the query or its parameters.
const FIELDS = [
  "code",
  "severity",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

/** A plain, structured-clone-safe copy of an error thrown in the worker. */
export function serializeError(err: unknown): SerializedError {
  if (typeof err !== "object" || err === null) return { message: String(err), name: "Error" };
  const source = err as Record<string, unknown>;
  const out: SerializedError = { message: String(source.message ?? err), name: String(source.name ?? "Error") };
  for (const field of FIELDS) {
    const value = source[field];
    if (typeof value === "string" || typeof value === "number") out[field] = String(value);
  }
  return out;
}

/**
 * The error as the coordinator's thread sees it: a SQL error becomes pg's own DatabaseError with the same fields
 * (so `code === "23505"` checks and faults.ts work as with a server), anything else an Error of the same name.
 */
export function deserializeError(serialized: SerializedError): Error {
  const { message, name, ...fields } = serialized;
  if (fields.code !== undefined) return Object.assign(new pg.DatabaseError(message, 0, "error"), fields);
  const error = new Error(message);
  error.name = name;
  return error;
}
