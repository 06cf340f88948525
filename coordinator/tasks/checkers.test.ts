// Who checks an answer and who was wrong: table tests of the pure rules in checkers.ts.
import { describe, expect, it } from "vitest";
import { liveNode } from "../../test/support/live-nodes.ts";
import type { LiveNode } from "../nodes/registry.ts";
import { chooseChecker, wrongAnswer, type Disagreement } from "./checkers.ts";

interface Spec {
  id: string;
  account?: string;
  reputation?: number;
  model?: string;
  busy?: number;
  full?: boolean;
  suspended?: boolean;
  tier?: "BASIC" | "MID" | "PRO";
}

function node(spec: Spec): LiveNode {
  const live = liveNode(
    spec.id,
    spec.account ?? `account-${spec.id}`,
    spec.tier ?? "PRO",
    spec.reputation ?? 100,
    spec.busy ?? 0,
  );
  Object.assign(live.capabilities, {
    modelName: spec.model ?? "llama-8b",
    quantization: "Q4_K_M",
    maxConcurrentTasks: spec.full ? (spec.busy ?? 0) : 4,
  });
  live.suspended = spec.suspended ?? false;
  return live;
}

const first = node({ id: "answered", account: "alice", reputation: 300 });

describe("chooseChecker", () => {
  it.each<{ what: string; others: Spec[]; checker: string | undefined }>([
    { what: "a less reputable node checks the top node", others: [{ id: "new", reputation: 100 }], checker: "new" },
    { what: "never the answering node itself", others: [], checker: undefined },
    {
      what: "another model cannot reproduce the answer",
      others: [{ id: "other", model: "qwen-7b" }],
      checker: undefined,
    },
    { what: "a suspended node checks nothing", others: [{ id: "bad", suspended: true }], checker: undefined },
    { what: "a full node is not free", others: [{ id: "full", busy: 2, full: true }], checker: undefined },
    { what: "a tier that does not serve the difficulty", others: [{ id: "basic", tier: "BASIC" }], checker: undefined },
    {
      what: "the better record first",
      others: [
        { id: "low", reputation: 90 },
        { id: "high", reputation: 150 },
      ],
      checker: "high",
    },
    {
      what: "another account before a more reputable sibling",
      others: [
        { id: "sibling", account: "alice", reputation: 500 },
        { id: "stranger", reputation: 50 },
      ],
      checker: "stranger",
    },
    {
      what: "a sibling when nobody else serves the model",
      others: [{ id: "sibling", account: "alice" }],
      checker: "sibling",
    },
    {
      what: "an idle node before a busy one of equal standing",
      others: [{ id: "busy", busy: 1 }, { id: "idle" }],
      checker: "idle",
    },
  ])("$what", ({ others, checker }) => {
    const nodes = [first, ...others.map(node)];
    expect(
      chooseChecker(
        { model: { modelName: "llama-8b", quantization: "Q4_K_M" }, difficulty: "COMPLEX", avoid: [first] },
        nodes,
        () => 0.5,
      )?.id,
    ).toBe(checker);
  });

  it("draws among equals at random, so checks of a fresh network spread over every node", () => {
    const equals = ["a", "b", "c", "d"].map((id) => node({ id }));
    const seen = new Map<string, number>();
    let seed = 11;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let i = 0; i < 400; i++) {
      const picked = chooseChecker(
        { model: { modelName: "llama-8b", quantization: "Q4_K_M" }, difficulty: "SIMPLE", avoid: [first] },
        [first, ...equals],
        random,
      )!;
      seen.set(picked.id, (seen.get(picked.id) ?? 0) + 1);
    }
    for (const id of ["a", "b", "c", "d"]) expect(seen.get(id)).toBeGreaterThan(60);
  });

  it("a referee is neither of the two nodes that disagree, and of neither account when it can be", () => {
    const checker = node({ id: "checker", account: "bob" });
    const nodes = [
      first,
      checker,
      node({ id: "bobs-other", account: "bob", reputation: 900 }),
      node({ id: "carols", account: "carol" }),
    ];
    expect(
      chooseChecker(
        { model: { modelName: "llama-8b", quantization: "Q4_K_M" }, difficulty: "SIMPLE", avoid: [first, checker] },
        nodes,
        () => 0.5,
      )?.id,
    ).toBe("carols");
  });
});

describe("wrongAnswer", () => {
  const referee = (agreesWithAnswer: boolean, agreesWithChecker: boolean) => ({
    referee: { agreesWithAnswer, agreesWithChecker },
  });
  it.each<{ what: string; d: Disagreement; wrong: ReturnType<typeof wrongAnswer> }>([
    {
      what: "the referee sides with the checker",
      d: { answeredReputation: 300, checkerReputation: 100, ...referee(false, true) },
      wrong: "answer",
    },
    {
      what: "the referee sides with the answer",
      d: { answeredReputation: 100, checkerReputation: 300, ...referee(true, false) },
      wrong: "check",
    },
    {
      what: "equals: the referee decides",
      d: { answeredReputation: 100, checkerReputation: 100, ...referee(false, true) },
      wrong: "answer",
    },
    {
      what: "the referee agrees with neither",
      d: { answeredReputation: 100, checkerReputation: 300, ...referee(false, false) },
      wrong: undefined,
    },
    {
      what: "the referee agrees with both (similarity is not transitive)",
      d: { answeredReputation: 100, checkerReputation: 300, ...referee(true, true) },
      wrong: undefined,
    },
    {
      what: "no referee: the more reputable checker is believed",
      d: { answeredReputation: 100, checkerReputation: 200 },
      wrong: "answer",
    },
    {
      what: "no referee: a less reputable checker is not believed, nor penalised",
      d: { answeredReputation: 200, checkerReputation: 100 },
      wrong: undefined,
    },
    {
      what: "no referee, equal reputations: nobody",
      d: { answeredReputation: 100, checkerReputation: 100 },
      wrong: undefined,
    },
  ])("$what", ({ d, wrong }) => expect(wrongAnswer(d)).toBe(wrong));
});
