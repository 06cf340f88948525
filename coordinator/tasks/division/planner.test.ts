// Table tests of the subtask planner's pure parts: reading a node's plan, the rule-based split, folding, headings.
import { describe, expect, it } from "vitest";
import { fold, parsePlan, partHeading, planningMessages, ruleBasedParts } from "./planner.ts";

describe("parsePlan", () => {
  it.each([
    { answer: '["What is X?", "What is Y?"]', parts: ["What is X?", "What is Y?"] },
    { answer: 'Sure! ```json\n["a", "b", "c"]\n``` Hope that helps.', parts: ["a", "b", "c"] },
    { answer: '["  a  ", "", "b"]', parts: ["a", "b"] },
    { answer: "[]", parts: undefined },
    { answer: '["only one"]', parts: undefined },
    { answer: "I cannot split this.", parts: undefined },
    { answer: "[1, 2]", parts: undefined },
    { answer: '["a", "b"', parts: undefined },
    { answer: `["${"x".repeat(5000)}", "b"]`, parts: undefined },
    { answer: '["1", "2", "3", "4", "5"]', parts: ["1", "2\n\n3", "4\n\n5"] }, // folded into 3
  ])("$answer → $parts", ({ answer, parts }) => {
    expect(parsePlan(answer, 3)).toEqual(parts);
  });
});

describe("fold", () => {
  it.each([
    { parts: ["a", "b"], max: 3, folded: ["a", "b"] },
    { parts: ["a", "b", "c", "d"], max: 2, folded: ["a\n\nb", "c\n\nd"] },
    { parts: ["a", "b", "c", "d", "e", "f", "g"], max: 3, folded: ["a\n\nb", "c\n\nd", "e\n\nf\n\ng"] },
  ])("$parts into $max", ({ parts, max, folded }) => {
    expect(fold(parts, max)).toEqual(folded);
  });
});

describe("ruleBasedParts", () => {
  it.each([
    {
      name: "a numbered list with an introduction",
      request: "Answer briefly:\n1. What is DNS?\n2. What is TCP?\n3) What is TLS?",
      parts: ["Answer briefly:\n\nWhat is DNS?", "Answer briefly:\n\nWhat is TCP?", "Answer briefly:\n\nWhat is TLS?"],
    },
    {
      name: "items with continuation lines",
      request: "1. Explain caching\n   with an example\n2. Explain sharding",
      parts: ["Explain caching\n   with an example", "Explain sharding"],
    },
    {
      name: "a numbered list run on in one line (the README's example)",
      request: "1. Define TCP. 2. Define UDP.",
      parts: ["Define TCP.", "Define UDP."],
    },
    {
      name: "a one-line list after an introduction",
      request: "Compare them: 1) define TCP 2) define UDP 3) define IP",
      parts: ["Compare them:\n\ndefine TCP", "Compare them:\n\ndefine UDP", "Compare them:\n\ndefine IP"],
    },
    { name: "a number ending a sentence is no item", request: "I counted 1. Then I counted 2. Done.", parts: [] },
    { name: "a dotted number inside a clause is no item", request: "We need 1. apples and 2. pears", parts: [] },
    { name: "numbers out of order are not a list", request: "2. b\n1. a", parts: [] },
    { name: "one item is not a list", request: "1. only this", parts: [] },
    {
      name: "several questions",
      request: "I am learning networking. What is DNS? How does TCP differ from UDP?",
      parts: [
        "I am learning networking.\n\nWhat is DNS?",
        "I am learning networking.\n\nHow does TCP differ from UDP?",
      ],
    },
    { name: "one question", request: "What is DNS? Explain in detail.", parts: [] },
    { name: "a statement between questions", request: "What is DNS? I need it for work. What is TCP?", parts: [] },
    { name: "full-width question marks", request: "什么是DNS？什么是TCP？", parts: ["什么是DNS？", "什么是TCP？"] },
    { name: "a long document full of questions", request: `${"Why? ".repeat(500)}`, parts: [] },
  ])("$name", ({ request, parts }) => {
    expect(ruleBasedParts(request, 6)).toEqual(parts);
  });

  it("folds a list longer than the limit", () => {
    const request = Array.from({ length: 8 }, (_, i) => `${i + 1}. q${i + 1}`).join("\n");
    expect(ruleBasedParts(request, 4)).toEqual(["q1\n\nq2", "q3\n\nq4", "q5\n\nq6", "q7\n\nq8"]);
  });
});

describe("planningMessages and partHeading", () => {
  it("asks for a JSON array within the limit and passes the request unchanged", () => {
    const [system, user] = planningMessages("Do A and B", 4);
    expect(system!.content).toContain("JSON array of 2 to 4 strings");
    expect(user).toEqual({ role: "user", content: "Do A and B" });
  });
  it.each([
    { index: 0, prompt: "What is DNS?", heading: "1. What is DNS?" },
    { index: 2, prompt: "Answer briefly:\n\nWhat is TLS?", heading: "3. What is TLS?" },
    { index: 1, prompt: "x".repeat(200), heading: `2. ${"x".repeat(117)}...` },
  ])("heading $heading", ({ index, prompt, heading }) => {
    expect(partHeading(index, prompt)).toBe(heading);
  });
});
