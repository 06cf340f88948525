// Many rows as one parameter: the rows go to PostgreSQL as one JSON text that `jsonb_to_recordset` reads back as a
// table. One placeholder and one statement text per set of columns, however many rows, where a multi-row VALUES
// list has a placeholder per cell (each built, compiled and serialised on the coordinator's thread: the task
// journal's batches and the reputation ledger's, on every chat's path through the CPU).
import { sql, type RawBuilder } from "kysely";

/** SQL types of the columns a recordset may carry, by column name; names and types are never taken from rows. */
export type ColumnTypes = Readonly<Record<string, string>>;

export interface RowGroup {
  columns: string[];
  rows: Record<string, unknown>[];
}

/**
 * Rows grouped by the columns they set, in first-seen order: a column a row leaves undefined is left out of its
 * group's statement, so the table's default applies (a NULL from the recordset would not).
 */
export function groupByColumns(rows: readonly object[]): RowGroup[] {
  const groups = new Map<string, RowGroup>();
  for (const row of rows as readonly Record<string, unknown>[]) {
    const columns = Object.keys(row)
      .filter((column) => row[column] !== undefined)
      .sort();
    const signature = columns.join(",");
    let group = groups.get(signature);
    if (!group) groups.set(signature, (group = { columns, rows: [] }));
    group.rows.push(row);
  }
  return [...groups.values()];
}

/**
 * `jsonb_to_recordset($1::jsonb) AS <alias>(column type, …)`: the rows as a table. Dates travel as ISO 8601 text,
 * JSON values (columns typed jsonb) as themselves.
 */
export function recordset(
  types: ColumnTypes,
  columns: readonly string[],
  rows: readonly object[],
  alias = "d",
): RawBuilder<unknown> {
  const definitions = sql.raw(definitionsOf(types, columns));
  return sql`jsonb_to_recordset(${storableJson(rows)}::jsonb) AS ${sql.raw(alias)}(${definitions})`;
}

/**
 * recordset()'s text for code that writes its statement's text itself (the task journal's batch, on every chat's
 * path): `jsonb_to_recordset($<placeholder>::jsonb) AS <alias>(column type, …)`. A raw template's Kysely nodes cost
 * more to build and compile than the statement costs the server to run; the column list is built once per set.
 * With `epochMs`, the rows' timestamptz columns are numbers (epochMsRows), read as double precision, and the
 * statement turns them back with epochMsValue.
 */
export function recordsetText(
  types: ColumnTypes,
  columns: readonly string[],
  placeholder: number,
  alias = "d",
  epochMs = false,
): string {
  return `jsonb_to_recordset($${placeholder}::jsonb) AS ${alias}(${definitionsOf(types, columns, epochMs)})`;
}

/** insertRecordset()'s text, its rows at `$<placeholder>` (`epochMs`: as recordsetText). */
export function insertRecordsetText(
  table: string,
  types: ColumnTypes,
  columns: readonly string[],
  placeholder: number,
  epochMs = false,
) {
  const list = columnList(columns);
  const values = epochMs ? epochMsValues(types, columns) : list;
  const rows = recordsetText(types, columns, placeholder, "d", epochMs);
  return `INSERT INTO ${quoted(table)} (${list}) SELECT ${values} FROM ${rows}`;
}

/**
 * Rows for a recordset whose timestamps travel as numbers: each row copied with its timestamptz columns' Dates (and
 * date texts) as milliseconds since the epoch. JSON.stringify leaves its fast path at the first Date (a toJSON), and
 * a Date's ISO text costs about a microsecond to write: a chat's task records hold nine.
 */
export function epochMsRows(types: ColumnTypes, rows: readonly object[]): object[] {
  return rows.map((row) => {
    const copy: Record<string, unknown> = { ...row };
    for (const column in copy) {
      const value = copy[column];
      if (value instanceof Date) copy[column] = value.getTime();
      else if (typeof value === "string" && types[column] === TIMESTAMPTZ) copy[column] = Date.parse(value);
    }
    return copy;
  });
}

/** A column of a recordset read with `epochMs`, as the value to store: a timestamp turned back from milliseconds. */
export function epochMsValue(types: ColumnTypes, column: string, alias?: string): string {
  const name = alias ? `${alias}.${quoted(column)}` : quoted(column);
  return typeOf(types, column) === TIMESTAMPTZ ? `to_timestamp(${name} / 1000.0)` : name;
}

const TIMESTAMPTZ = "timestamptz";

/** An identifier as Kysely's PostgreSQL compiler quotes it. */
export const quoted = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** `"a", "b"`: a recordset's columns, built once per set. */
function columnList(columns: readonly string[]): string {
  const key = columns.join(",");
  let list = columnLists.get(key);
  if (list === undefined) columnLists.set(key, (list = columns.map(quoted).join(", ")));
  return list;
}

/** `"a", to_timestamp("b" / 1000.0)`: an epochMs recordset's columns as values, built once per set. */
function epochMsValues(types: ColumnTypes, columns: readonly string[]): string {
  return cachedText(epochValueLists, types, columns, () => columns.map((c) => epochMsValue(types, c)).join(", "));
}

const columnLists = new Map<string, string>();
const definitions = new WeakMap<ColumnTypes, Map<string, string>>();
const epochDefinitions = new WeakMap<ColumnTypes, Map<string, string>>();
const epochValueLists = new WeakMap<ColumnTypes, Map<string, string>>();

function definitionsOf(types: ColumnTypes, columns: readonly string[], epochMs = false): string {
  const type = (column: string) => {
    const sqlType = typeOf(types, column);
    return epochMs && sqlType === TIMESTAMPTZ ? "double precision" : sqlType;
  };
  return cachedText(epochMs ? epochDefinitions : definitions, types, columns, () =>
    columns.map((column) => `${quoted(column)} ${type(column)}`).join(", "),
  );
}

/** A text built once per column types and set of columns. */
function cachedText(
  cache: WeakMap<ColumnTypes, Map<string, string>>,
  types: ColumnTypes,
  columns: readonly string[],
  build: () => string,
): string {
  let byColumns = cache.get(types);
  if (!byColumns) cache.set(types, (byColumns = new Map()));
  const key = columns.join(",");
  let text = byColumns.get(key);
  if (text === undefined) byColumns.set(key, (text = build()));
  return text;
}

function typeOf(types: ColumnTypes, column: string): string {
  const type = types[column];
  if (type === undefined || !Object.hasOwn(types, column)) throw new Error(`no SQL type for column ${column}`);
  return type;
}

/** `\u0000` escapes in JSON text: an odd run of backslashes before `u0000` is one (an even run escapes itself). */
const NUL_ESCAPE = /(\\+)u0000/g;

/**
 * JSON text PostgreSQL takes: jsonb (and text) cannot hold U+0000, so a NUL in a string (a node's error message may
 * carry one) becomes U+FFFD instead of failing the statement, and with it every other row of the batch.
 */
export function storableJson(value: unknown): string {
  const json = JSON.stringify(value);
  if (!json.includes("u0000")) return json;
  return json.replace(NUL_ESCAPE, (match, slashes: string) => (slashes.length % 2 === 1 ? `${slashes}ufffd` : match));
}

/** `INSERT INTO table (columns) SELECT columns FROM <recordset>`: one group's rows in one statement. */
export function insertRecordset(table: string, types: ColumnTypes, group: RowGroup): RawBuilder<unknown> {
  // the definitions first: they refuse a column without a type before any name is written into the text
  const rows = recordset(types, group.columns, group.rows);
  const columns = sql.raw(columnList(group.columns));
  return sql`INSERT INTO ${sql.raw(quoted(table))} (${columns}) SELECT ${columns} FROM ${rows}`;
}
