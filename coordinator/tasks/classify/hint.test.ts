// The caller's difficulty hint: anyone may raise the difficulty, only a trusted caller (an admin) may lower it.
import { describe, expect, it } from "vitest";
import type { Difficulty } from "../../../common/vocabulary.ts";
import type { Classification, Classifier } from "./classifier.ts";
import { applyHint, classifyWithHint } from "./hint.ts";

const classified = (difficulty: Difficulty): Classification => ({ difficulty, classifier: "openrouter" });

describe("applyHint", () => {
  it.each<[Difficulty, Difficulty | undefined, boolean, Classification]>([
    ["SIMPLE", undefined, false, classified("SIMPLE")],
    ["SIMPLE", "ADVANCED", false, { difficulty: "ADVANCED", classifier: "hint" }],
    ["COMPLEX", "COMPLEX", false, classified("COMPLEX")],
    ["ADVANCED", "SIMPLE", false, classified("ADVANCED")],
    ["ADVANCED", "SIMPLE", true, { difficulty: "SIMPLE", classifier: "hint" }],
    ["SIMPLE", "COMPLEX", true, { difficulty: "COMPLEX", classifier: "hint" }],
  ])("classified %s, hint %s, trusted %s", (difficulty, hint, trusted, expected) => {
    expect(applyHint(classified(difficulty), hint, { trusted })).toEqual(expected);
  });
});

describe("classifyWithHint", () => {
  const counting = () => {
    let calls = 0;
    const classifier: Classifier = {
      async classify() {
        calls++;
        return classified("COMPLEX");
      },
    };
    return { classifier, calls: () => calls };
  };
  const input = { messages: [{ role: "user", content: "Compare A and B." }] };

  it("a trusted hint decides without asking the classifier", async () => {
    const { classifier, calls } = counting();
    expect(await classifyWithHint(classifier, input, "SIMPLE", { trusted: true })).toEqual({
      difficulty: "SIMPLE",
      classifier: "hint",
    });
    expect(calls()).toBe(0);
  });

  it("an untrusted hint is weighed against the classification", async () => {
    const { classifier, calls } = counting();
    expect(await classifyWithHint(classifier, input, "SIMPLE")).toEqual(classified("COMPLEX"));
    expect(await classifyWithHint(classifier, input, "ADVANCED")).toEqual({
      difficulty: "ADVANCED",
      classifier: "hint",
    });
    expect(calls()).toBe(2);
  });
});
