// When the CLI colours its output, and in which colours (the agent screen's), table-driven.
import { describe, expect, it } from "vitest";
import { palette, wantsColor } from "./color.ts";

describe("wantsColor", () => {
  it.each([
    [true, {}, true],
    [true, { NO_COLOR: "1" }, false],
    [true, { NO_COLOR: "" }, true], // no-color.org: only a non-empty value turns colour off
    [false, {}, false],
    [undefined, {}, false],
  ])("isTTY %s with %j → %s", (isTTY, env, expected) => expect(wantsColor({ isTTY }, env)).toBe(expected));
});

describe("palette", () => {
  it.each([
    ["SIMPLE", "\x1b[32mSIMPLE\x1b[39m"],
    ["COMPLEX", "\x1b[33mCOMPLEX\x1b[39m"],
    ["ADVANCED", "\x1b[31mADVANCED\x1b[39m"],
    ["-", "-"],
  ])("difficulty %s", (name, painted) => expect(palette(true).difficulty(name)).toBe(painted));

  it.each([
    ["BASIC", "\x1b[34mBASIC\x1b[39m"],
    ["MID", "\x1b[36mMID\x1b[39m"],
    ["PRO", "\x1b[35mPRO\x1b[39m"],
  ])("tier %s", (name, painted) => expect(palette(true).tier(name)).toBe(painted));

  it("paints nothing when colour is off", () => {
    expect(palette(false).tier("PRO", "tier PRO")).toBe("tier PRO");
    expect(palette(false).difficulty("SIMPLE")).toBe("SIMPLE");
  });
});
