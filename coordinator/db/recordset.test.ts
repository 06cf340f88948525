// JSON text PostgreSQL takes: a NUL escape becomes U+FFFD, a backslash written before "u0000" stays text; the
// statement texts written without Kysely quote their identifiers as Kysely does and refuse a column without a type.
import { describe, expect, it } from "vitest";
import { epochMsRows, epochMsValue, insertRecordsetText, recordsetText, storableJson } from "./recordset.ts";

describe("storableJson", () => {
  it("carries a NUL as U+FFFD and leaves everything else as JSON.stringify writes it", () => {
    const value = [{ reason: "a\u0000b\u0000", plain: "no nul here", n: 1 }];
    expect(JSON.parse(storableJson(value))).toEqual([{ reason: "a\ufffdb\ufffd", plain: "no nul here", n: 1 }]);
    expect(storableJson({ plain: "x" })).toBe(JSON.stringify({ plain: "x" }));
  });

  it("tells an escaped backslash followed by u0000 (text) from a NUL escape, however many backslashes", () => {
    for (const text of ["\\u0000", "\\\\u0000", "\\\u0000", "\\\\\u0000", "u0000"]) {
      expect(JSON.parse(storableJson({ text })).text, JSON.stringify(text)).toBe(text.replaceAll("\u0000", "\ufffd"));
    }
  });
});

describe("recordset texts", () => {
  const types = { id: "uuid", 'odd"name': "text" };

  it("quotes every identifier and types every column, its rows at the placeholder given", () => {
    expect(recordsetText(types, ["id", 'odd"name'], 3, "s")).toBe(
      'jsonb_to_recordset($3::jsonb) AS s("id" uuid, "odd""name" text)',
    );
    expect(insertRecordsetText("tasks", types, ["id"], 1)).toBe(
      'INSERT INTO "tasks" ("id") SELECT "id" FROM jsonb_to_recordset($1::jsonb) AS d("id" uuid)',
    );
  });

  it("refuses a column without a type, even one an object inherits", () => {
    expect(() => recordsetText(types, ["id", "status"], 1)).toThrow("no SQL type for column status");
    expect(() => recordsetText(types, ["toString"], 1)).toThrow("no SQL type for column toString");
  });
});

describe("timestamps as milliseconds (epochMs)", () => {
  const types = { id: "uuid", at: "timestamptz", note: "text" };

  it("carries a timestamptz column's Date or date text as a number, and nothing else", () => {
    const at = new Date("2026-12-06T19:33:44.198Z");
    const row = { id: "x", at, note: "2026-12-06T00:00:00Z" };
    expect(epochMsRows(types, [row, { id: "y", at: at.toISOString(), note: null }])).toEqual([
      { id: "x", at: at.getTime(), note: "2026-12-06T00:00:00Z" },
      { id: "y", at: at.getTime(), note: null },
    ]);
    expect(row.at).toBe(at); // the rows given are left as they were
  });

  it("reads them as double precision and stores them through to_timestamp", () => {
    expect(recordsetText(types, ["id", "at"], 2, "d", true)).toBe(
      'jsonb_to_recordset($2::jsonb) AS d("id" uuid, "at" double precision)',
    );
    expect(insertRecordsetText("t", types, ["id", "at", "note"], 1, true)).toBe(
      'INSERT INTO "t" ("id", "at", "note") SELECT "id", to_timestamp("at" / 1000.0), "note" FROM ' +
        'jsonb_to_recordset($1::jsonb) AS d("id" uuid, "at" double precision, "note" text)',
    );
    expect(epochMsValue(types, "at", "d")).toBe('to_timestamp(d."at" / 1000.0)');
    expect(epochMsValue(types, "note", "d")).toBe('d."note"');
    // the text without epochMs is unchanged
    expect(recordsetText(types, ["id", "at"], 2)).toBe(
      'jsonb_to_recordset($2::jsonb) AS d("id" uuid, "at" timestamptz)',
    );
  });
});
