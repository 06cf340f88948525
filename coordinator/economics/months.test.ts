// UTC month arithmetic behind payout periods: ranges, naming, stepping across years.
import { describe, expect, it } from "vitest";
import { addMonths, monthOf, monthRange, monthsFrom } from "./months.ts";

describe("months", () => {
  it.each([
    { month: "2026-11", start: "2026-11-01T00:00:00.000Z", end: "2026-12-01T00:00:00.000Z" },
    { month: "2026-12", start: "2026-12-01T00:00:00.000Z", end: "2027-01-01T00:00:00.000Z" },
    { month: "2028-02", start: "2028-02-01T00:00:00.000Z", end: "2028-03-01T00:00:00.000Z" },
  ])("$month is [$start, $end)", ({ month, start, end }) => {
    const range = monthRange(month);
    expect([range.start.toISOString(), range.end.toISOString()]).toEqual([start, end]);
  });

  it.each(["2026-13", "2026-00", "2026-1", "26-11", " 2026-11", ""])("rejects %j", (month) => {
    expect(() => monthRange(month)).toThrow(RangeError);
  });

  it("names the UTC month of an instant, whatever the local time zone says", () => {
    expect(monthOf(new Date("2026-11-30T23:59:59.999Z"))).toBe("2026-11");
    expect(monthOf(new Date("2026-12-01T00:00:00.000Z"))).toBe("2026-12");
    expect(monthOf(new Date("2026-11-30T23:30:00-02:00"))).toBe("2026-12");
  });

  it("steps across year ends both ways", () => {
    expect(addMonths("2026-12", 1)).toBe("2027-01");
    expect(addMonths("2027-01", -1)).toBe("2026-12");
    expect(addMonths("2026-11", 14)).toBe("2028-01");
    expect(monthsFrom("2026-11", "2027-02")).toEqual(["2026-11", "2026-12", "2027-01", "2027-02"]);
    expect(monthsFrom("2027-02", "2026-11")).toEqual([]);
  });
});
