// JSON text PostgreSQL takes: a NUL escape becomes U+FFFD, a backslash written before "u0000" stays text.
import { describe, expect, it } from "vitest";
import { storableJson } from "./recordset.ts";

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
