// The CLI's table printer and number formats, table-driven.
import { describe, expect, it } from "vitest";
import { Tier } from "../gen/iris/v1/common_pb.ts";
import { formatAgo, formatDecimal, formatMs, formatParameters, maskAccountKey, tierName } from "./format.ts";
import { renderFields, renderTable } from "./table.ts";

describe("renderTable", () => {
  const columns = [
    { header: "NODE", value: (r: { id: string; rep: number }) => r.id },
    { header: "REP", value: (r: { id: string; rep: number }) => String(r.rep), align: "right" as const },
    { header: "NOTE", value: () => "" },
  ];

  it("aligns columns two spaces apart, numbers right, with no trailing spaces", () => {
    expect(
      renderTable(columns, [
        { id: "gpu-1", rep: 110 },
        { id: "a", rep: 5 },
      ]),
    ).toBe(["NODE   REP  NOTE", "gpu-1  110", "a        5", ""].join("\n"));
  });

  it("says so when there are no rows, and keeps a cell's newlines from breaking the lines", () => {
    expect(renderTable(columns, [], "(no nodes)")).toBe("NODE  REP  NOTE\n(no nodes)\n");
    expect(renderTable([{ header: "A", value: () => "x\ny" }], [{}])).toBe("A\nx y\n");
  });

  it("colours a cell's text but not its padding, so coloured columns stay aligned", () => {
    const painted = [{ ...columns[0]!, paint: (text: string) => `<${text}>` }, columns[1]!];
    expect(
      renderTable(painted, [
        { id: "gpu-1", rep: 110 },
        { id: "a", rep: 5 },
      ]),
    ).toBe(["NODE   REP", "<gpu-1>  110", "<a>        5", ""].join("\n"));
  });

  it("prints fields as aligned name and value", () => {
    expect(
      renderFields([
        ["nodes online", "3"],
        ["queue", "0"],
      ]),
    ).toBe("nodes online  3\nqueue         0\n");
  });
});

describe("formats", () => {
  const now = Date.UTC(2026, 10, 26, 12);

  it.each([
    [8_000_000_000n, "8B"],
    [1_500_000_000n, "1.5B"],
    [70_600_000_000n, "70.6B"],
    [350_000_000n, "350M"],
    [7_240_000_000n, "7.2B"],
    [405_000_000_000n, "405B"],
    [139_840n, "140K"], // the generated tiny model: never "139840" beside "70B"
    [2_500n, "2.5K"],
    [512n, "512"],
    [0n, "-"],
  ])("parameters %s → %s", (count, text) => expect(formatParameters(count)).toBe(text));

  it.each([
    [0, "-"],
    [850, "850 ms"],
    [1500, "1.5 s"],
    [60_000, "60 s"],
  ])("duration %s ms → %s", (ms, text) => expect(formatMs(ms)).toBe(text));

  it.each([
    [0, "-"],
    [now - 5_000, "5 s ago"],
    [now - 12 * 60_000, "12 min ago"],
    [now - 3 * 3_600_000, "3 h ago"],
    [now - 2 * 86_400_000, "2 d ago"],
  ])("moment %s → %s", (at, text) => expect(formatAgo(at, now)).toBe(text));

  it("rounds to one decimal and names tiers", () => {
    expect([formatDecimal(42.25), formatDecimal(110), formatDecimal(8.849)]).toEqual(["42.3", "110", "8.8"]);
    expect([tierName(Tier.PRO), tierName(Tier.UNSPECIFIED)]).toEqual(["PRO", "-"]);
  });

  it("masks all but the last four digits of an account key", () => {
    expect(maskAccountKey("1234 5678 9012 3456")).toBe("**** **** **** 3456");
    expect(maskAccountKey("1234567890123456")).toBe("**** **** **** 3456");
  });
});
