// A peer's place in one home's numbered views: each view in turn, and whether the peer asks for the full view.
import { describe, expect, it } from "vitest";
import { ViewStream, type WantReason } from "./view-stream.ts";

interface Step {
  /** The view's number; `full` for a full view. */
  view: number;
  full?: boolean;
  /** Nodes the peer holds as listed after applying it, and the home's count (default: the same). */
  listed?: number;
  count?: number;
  /** When it arrives (ms). */
  at?: number;
  /** What the peer does: ignores it, asks (why), or nothing. */
  expected: "ignored" | WantReason | undefined;
}

const cases: [name: string, steps: Step[]][] = [
  [
    "every view from the home's first: in step",
    [
      { view: 1, expected: undefined },
      { view: 2, listed: 1, expected: undefined },
      { view: 3, listed: 1, expected: undefined },
    ],
  ],
  [
    "first heard after the home's first: asks, again after CLUSTER_VIEW_MS, until a full view",
    [
      { view: 5, expected: "first" },
      { view: 6, at: 500, expected: undefined },
      { view: 7, at: 1_000, expected: "first" },
      { view: 8, full: true, at: 1_100, expected: undefined },
      { view: 9, at: 2_500, expected: undefined },
    ],
  ],
  [
    "a view skipped: asks; the full view after it puts the peer in step",
    [
      { view: 1, expected: undefined },
      { view: 3, expected: "gap" },
      { view: 4, full: true, expected: undefined },
      { view: 5, expected: undefined },
    ],
  ],
  [
    "a count that disagrees with the nodes held",
    [
      { view: 1, full: true, listed: 2, expected: undefined },
      { view: 2, listed: 2, count: 3, expected: "count" },
    ],
  ],
  [
    "a view heard already is ignored; a full view never is (a run that reused its incarnation)",
    [
      { view: 1, expected: undefined },
      { view: 2, expected: undefined },
      { view: 2, expected: "ignored" },
      { view: 1, full: true, expected: undefined },
      { view: 2, expected: undefined },
    ],
  ],
  [
    "a home that does not number its views: never asked",
    [
      { view: 0, full: true, listed: 1, expected: undefined },
      { view: 0, listed: 1, count: 0, expected: undefined },
    ],
  ],
];

describe("a peer's place in a home's views", () => {
  it.each(cases)("%s", (_name, steps) => {
    const stream = new ViewStream();
    const seen = steps.map((step) => {
      if (!stream.heard(BigInt(step.view), step.full ?? false)) return "ignored";
      stream.listed.clear();
      for (let i = 0; i < (step.listed ?? 0); i++) stream.listed.add(`n${i}`);
      stream.counted(step.count ?? step.listed ?? 0);
      return stream.want(step.at ?? 0, 1_000);
    });
    expect(seen).toEqual(steps.map((step) => step.expected));
  });

  it("asks when a listed node is disconnected here at two beats in a row, not at one", () => {
    const stream = new ViewStream();
    stream.heard(1n, true);
    stream.disconnected(new Set(["n1"]));
    expect(stream.want(0, 1_000)).toBeUndefined();
    stream.disconnected(new Set(["n2"]));
    expect(stream.want(0, 1_000)).toBeUndefined();
    stream.disconnected(new Set(["n2"]));
    expect(stream.want(0, 1_000)).toBe("lost");
  });
});
