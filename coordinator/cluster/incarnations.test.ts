// Which run of a peer coordinator is live: each view or leaving in turn, and what it is taken for.
import { describe, expect, it } from "vitest";
import { Incarnations } from "./incarnations.ts";

type Step = [word: "view" | "left", home: string, incarnation: string, expected: string | boolean];

const cases: [name: string, steps: Step[]][] = [
  [
    "the same run, again and again",
    [
      ["view", "b", "1", "first"],
      ["view", "b", "1", "current"],
    ],
  ],
  [
    "a restart, then the ended run speaking (a second coordinator under the name)",
    [
      ["view", "b", "1", "first"],
      ["view", "b", "2", "restarted"],
      ["view", "b", "1", "retired"],
      ["view", "b", "2", "current"],
    ],
  ],
  [
    "a leaving: the next run is a newcomer; the ended run and its leaving are ignored",
    [
      ["view", "b", "1", "first"],
      ["left", "b", "1", true],
      ["view", "b", "1", "retired"],
      ["view", "b", "2", "first"],
      ["left", "b", "1", false],
      ["view", "b", "2", "current"],
    ],
  ],
  [
    "homes are apart",
    [
      ["view", "b", "1", "first"],
      ["view", "c", "1", "first"],
      ["view", "c", "2", "restarted"],
    ],
  ],
  [
    "a coordinator without incarnations is always current, and leaves as before",
    [
      ["view", "b", "", "current"],
      ["left", "b", "", true],
      ["view", "b", "", "current"],
      ["view", "b", "1", "first"],
    ],
  ],
];

describe("incarnations", () => {
  it.each(cases)("%s", (_name, steps) => {
    const incarnations = new Incarnations();
    const seen = steps.map(([word, home, incarnation]) =>
      word === "view" ? incarnations.heard(home, incarnation) : incarnations.left(home, incarnation),
    );
    expect(seen).toEqual(steps.map((step) => step[3]));
  });
});
