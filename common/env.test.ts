// The environment reader: values, fallbacks, and one problem per wrong variable, naming it.
import { describe, expect, it } from "vitest";
import { EnvReader } from "./env.ts";

/** What `read` returns from `env`, and the problems it recorded. */
function reading<T>(env: Record<string, string>, read: (r: EnvReader) => T): { value: T; problems: string[] } {
  const r = new EnvReader(env);
  const value = read(r);
  return { value, problems: r.problems };
}

describe("EnvReader", () => {
  it.each([
    ["unset: the fallback", {}, 8080],
    ["blank: the fallback", { PORT: "  " }, 8080],
    ["trimmed", { PORT: " 9090 " }, 9090],
    ["the lower bound", { PORT: "0" }, 0],
  ])("int: %s", (_, env, value) => {
    expect(reading(env, (r) => r.int("PORT", 8080, 0, 65535))).toEqual({ value, problems: [] });
  });

  it.each(["abc", "80.5", "70000", "-1", "1e3", "99999999999999999999"])("int refuses PORT=%s, naming it", (raw) => {
    expect(reading({ PORT: raw }, (r) => r.int("PORT", 8080, 0, 65535))).toEqual({
      value: 8080,
      problems: [`PORT must be a whole number from 0 to 65535 (got ${JSON.stringify(raw)})`],
    });
  });

  it.each([
    ["0.85", 0.85, []],
    [".5", 0.5, []],
    ["1", 1, []],
    ["5%", 0.9, ['SHARE must be a number from 0 to 1 (got "5%")']],
    ["1.5", 0.9, ['SHARE must be a number from 0 to 1 (got "1.5")']],
  ])("number: SHARE=%s", (raw, value, problems) => {
    expect(reading({ SHARE: raw }, (r) => r.number("SHARE", 0.9, 0, 1))).toEqual({ value, problems });
  });

  it.each([
    ["yes", true],
    ["ON", true],
    ["1", true],
    ["false", false],
    ["off", false],
    ["0", false],
  ])("bool: FLAG=%s", (raw, value) => {
    expect(reading({ FLAG: raw }, (r) => r.bool("FLAG", !value))).toEqual({ value, problems: [] });
  });

  it("bool refuses anything else", () => {
    expect(reading({ FLAG: "maybe" }, (r) => r.bool("FLAG", false))).toEqual({
      value: false,
      problems: ['FLAG must be true or false (got "maybe")'],
    });
  });

  it("oneOf matches in any case and names the choices when nothing matches", () => {
    const levels = ["info", "debug"] as const;
    expect(reading({ LEVEL: "Debug" }, (r) => r.oneOf("LEVEL", "info", levels))).toEqual({
      value: "debug",
      problems: [],
    });
    expect(reading({ LEVEL: "loud" }, (r) => r.oneOf("LEVEL", "info", levels))).toEqual({
      value: "info",
      problems: ['LEVEL must be one of info, debug (got "loud")'],
    });
  });

  it("url checks the protocol and never echoes the value (it may hold a password)", () => {
    const db = (raw: string) => reading({ DB: raw }, (r) => r.url("DB", ["postgres:"]));
    expect(db("postgres://u:p@h/d")).toEqual({ value: "postgres://u:p@h/d", problems: [] });
    expect(db("mysql://u:hunter2@h/d")).toEqual({ value: undefined, problems: ["DB must start with postgres://"] });
    expect(db("not a url hunter2")).toEqual({ value: undefined, problems: ["DB is not a valid URL"] });
    expect(reading({}, (r) => r.url("DB", ["https:"], "https://example.com"))).toEqual({
      value: "https://example.com",
      problems: [],
    });
  });

  it("list splits on commas, trims, and drops empty items", () => {
    expect(reading({ KEYS: " a, b ,,c, " }, (r) => r.list("KEYS")).value).toEqual(["a", "b", "c"]);
    expect(reading({}, (r) => r.list("KEYS")).value).toEqual([]);
  });

  it("string gives the trimmed value or the fallback", () => {
    expect(reading({ HOST: " example " }, (r) => r.string("HOST", "0.0.0.0")).value).toBe("example");
    expect(reading({ HOST: "" }, (r) => r.string("HOST")).value).toBeUndefined();
  });

  it("collects every problem, its own and those recorded for it, in order", () => {
    const { problems } = reading({ A: "x", B: "y" }, (r) => {
      r.int("A", 1, 0, 9);
      r.problem("A and B disagree");
      r.bool("B", false);
    });
    expect(problems).toEqual([
      'A must be a whole number from 0 to 9 (got "x")',
      "A and B disagree",
      'B must be true or false (got "y")',
    ]);
  });
});
