// Fixed-width formatting for the agent screen: every helper keeps its column width whatever the value.
import { describe, expect, it } from "vitest";
import {
  count,
  duration,
  fit as fitToWidth,
  mebibytes,
  meter,
  padStart,
  parameters,
  progressBar,
  rate,
} from "./format.ts";

describe("format", () => {
  it.each([
    [400, "0.4s"],
    [12_340, "12.3s"],
    [125_000, "2m05s"],
    [3_720_000, "1h02m"],
    [273_600_000, "3d04h"],
    [-5, "0.0s"],
  ])("duration(%d) = %s", (ms, text) => expect(duration(ms)).toBe(text));

  it.each([
    [0, "—"],
    [Number.NaN, "—"],
    [8.42, "8.4"],
    [42.4, "42"],
    [2931.2, "2,931"],
    [12_345, "12.3k"],
  ])("rate(%d) = %s", (perSecond, text) => expect(rate(perSecond)).toBe(text));

  it.each([
    [812, "812M"],
    [24_564, "24.0G"],
    [1_572_864, "1.5T"],
  ])("mebibytes(%d) = %s", (mb, text) => expect(mebibytes(mb)).toBe(text));

  it.each([
    [0, "?"],
    [113_472, "0.1M"],
    [124_000_000, "124M"],
    [8.03e9, "8.0B"],
    [70.6e9, "71B"],
  ])("parameters(%d) = %s", (n, text) => expect(parameters(n)).toBe(text));

  it("cuts and pads to the exact width", () => {
    expect(fitToWidth("NVIDIA GeForce RTX 4090", 10)).toBe("NVIDIA Ge…");
    expect(fitToWidth("short", 10)).toBe("short");
    expect(padStart(count(1234), 7)).toBe("  1,234");
  });

  it("draws an htop meter of exactly the given width with the label inside on the right", () => {
    const m = meter(0.5, "12.3G/24.0G", 30);
    const text = m.open + m.bars + m.rest + m.close;
    expect(text).toBe("[||||||||||||||   12.3G/24.0G]"); // 28 inner cells: half of them bars
    expect(text).toHaveLength(30);
    // a full meter: bars stop where the label starts
    const full = meter(1, "97%", 10);
    expect(full.open + full.bars + full.rest + full.close).toBe("[|||||97%]");
    // a label wider than the meter is cut, never widening it
    const tiny = meter(0.2, "12.3G/24.0G", 8);
    expect((tiny.open + tiny.bars + tiny.rest + tiny.close).length).toBe(8);
  });

  it("draws progress bars of the given width", () => {
    expect(progressBar(0.3, 10)).toEqual({ done: "███", todo: "░░░░░░░" });
    expect(progressBar(2, 4)).toEqual({ done: "████", todo: "" });
    expect(progressBar(Number.NaN, 3)).toEqual({ done: "", todo: "░░░" });
  });
});
