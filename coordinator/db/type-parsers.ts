// The one table of PostgreSQL text → JavaScript parsers that pg and PGlite (in this thread or its worker) share.
import pg from "pg";

// PostgreSQL type OIDs whose default JS mapping differs between pg and PGlite.
const INT8 = 20;
export const BYTEA = 17;
const NUMERIC = 1700;
const TIMESTAMPTZ = 1184;

function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    // Failing loudly beats returning a neighbouring integer; see the type notes in schema.ts.
    throw new RangeError(`int8 value ${text} is outside JavaScript's safe integer range`);
  }
  return value;
}

// One parser table for both drivers, so the same column yields the same JS type everywhere.
// timestamptz reuses pg's own parser (it understands PostgreSQL's ISO output, infinity and BC dates).
export const parsers: Record<number, (text: string) => unknown> = {
  [INT8]: parseInt8,
  [NUMERIC]: (text) => text,
  [TIMESTAMPTZ]: pg.types.getTypeParser(TIMESTAMPTZ, "text"),
  [BYTEA]: (text) => Buffer.from(text.slice(2), "hex"), // PGlite's text form is '\x' + hex
};

export const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    // pg already yields a Buffer for bytea, so only the other overrides apply to it.
    if (oid !== BYTEA && (format ?? "text") === "text" && parsers[oid]) return parsers[oid];
    return pg.types.getTypeParser(oid, format ?? "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};
