// Table tests of the UTC calendar arithmetic behind the periodic rules: hours, ISO weeks, connected time, promises.
import { describe, expect, it } from "vitest";
import {
  completedHours,
  completedWeeks,
  coveredMs,
  hourLabel,
  isoWeekLabel,
  isoWeekStart,
  mergeIntervals,
  parsePromisedHours,
} from "./periods.ts";

const t = (iso: string) => Date.parse(iso);

describe("hours", () => {
  it.each([
    ["2026-11-26T03:00:00.000Z", "2026-11-26T03"],
    ["2026-11-26T03:59:59.999Z", "2026-11-26T03"],
    ["2026-12-31T23:30:00Z", "2026-12-31T23"],
  ])("%s is hour %s", (instant, label) => {
    expect(hourLabel(t(instant))).toBe(label);
  });

  it("lists the completed hours before the current one, oldest first", () => {
    expect(completedHours(t("2026-11-26T05:30:00Z"), 3).map(hourLabel)).toEqual([
      "2026-11-26T02",
      "2026-11-26T03",
      "2026-11-26T04",
    ]);
  });
});

describe("ISO weeks", () => {
  it.each([
    ["2026-11-26T03:00:00Z", "2026-W48", "2026-11-23T00:00:00.000Z"], // a Thursday
    ["2026-11-23T00:00:00Z", "2026-W48", "2026-11-23T00:00:00.000Z"], // Monday midnight starts the week
    ["2026-11-22T23:59:59Z", "2026-W47", "2026-11-16T00:00:00.000Z"], // Sunday night ends the previous one
    ["2027-01-01T12:00:00Z", "2026-W53", "2026-12-28T00:00:00.000Z"], // 2026 has 53 ISO weeks
    ["2024-12-30T12:00:00Z", "2025-W01", "2024-12-30T00:00:00.000Z"], // late December in next year's week 1
    ["2021-01-03T12:00:00Z", "2020-W53", "2020-12-28T00:00:00.000Z"],
    ["2026-01-01T00:00:00Z", "2026-W01", "2025-12-29T00:00:00.000Z"],
  ])("%s is %s starting %s", (instant, label, start) => {
    expect(isoWeekLabel(t(instant))).toBe(label);
    expect(new Date(isoWeekStart(t(instant))).toISOString()).toBe(start);
  });

  it("lists the completed weeks before the current one, oldest first", () => {
    expect(completedWeeks(t("2026-11-26T03:00:00Z"), 2).map(isoWeekLabel)).toEqual(["2026-W46", "2026-W47"]);
  });
});

describe("connected time", () => {
  const iv = (from: string, to: string) => ({ from: t(from), to: t(to) });

  it("merges overlapping and touching sessions so time counts once", () => {
    const merged = mergeIntervals([
      iv("2026-11-26T03:30:00Z", "2026-11-26T04:10:00Z"),
      iv("2026-11-26T03:00:00Z", "2026-11-26T03:40:00Z"),
      iv("2026-11-26T04:10:00Z", "2026-11-26T04:20:00Z"),
      iv("2026-11-26T06:00:00Z", "2026-11-26T06:00:00Z"), // empty
    ]);
    expect(merged).toEqual([iv("2026-11-26T03:00:00Z", "2026-11-26T04:20:00Z")]);
  });

  it.each([
    { hour: "2026-11-26T03:00:00Z", minutes: 60 },
    { hour: "2026-11-26T04:00:00Z", minutes: 60 },
    { hour: "2026-11-26T05:00:00Z", minutes: 30 },
    { hour: "2026-11-26T06:00:00Z", minutes: 5 },
    { hour: "2026-11-26T07:00:00Z", minutes: 0 },
  ])("covers $minutes minutes of the hour starting $hour", ({ hour, minutes }) => {
    const merged = mergeIntervals([
      iv("2026-11-26T03:00:00Z", "2026-11-26T05:30:00Z"),
      iv("2026-11-26T06:55:00Z", "2026-11-26T07:00:00Z"),
    ]);
    expect(coveredMs(merged, t(hour), t(hour) + 3_600_000)).toBe(minutes * 60_000);
  });
});

describe("parsePromisedHours", () => {
  it.each([
    { value: [3, 4], expected: [3, 4] },
    { value: [0, 23, 23], expected: [0, 23] },
    { value: null, expected: undefined },
    { value: [], expected: undefined },
    { value: [24], expected: undefined },
    { value: [1.5], expected: undefined },
    { value: ["3"], expected: undefined },
    { value: { mon: [9, 17] }, expected: undefined },
  ])("$value -> $expected", ({ value, expected }) => {
    const parsed = parsePromisedHours(value);
    expect(parsed ? [...parsed].sort((a, b) => a - b) : parsed).toEqual(expected);
  });
});
