import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Difficulty } from "../../common/vocabulary.ts";
import { requireCapableNode } from "./capable-nodes.ts";
import { contextNeed } from "./context-fit.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { NodeRegistry } from "../nodes/registry.ts";

function refusal(
  nodes: ReturnType<typeof testNode>[],
  difficulty: Difficulty,
  extra: { model?: string; chars?: number } = {},
): ConnectError | undefined {
  const context = extra.chars !== undefined ? contextNeed([{ content: "a".repeat(extra.chars) }], 1_024) : undefined;
  // through the registry, as the orchestrator asks it: its nodes by tier are what the common case reads
  const registry = new NodeRegistry();
  for (const node of nodes) registry.add(node);
  try {
    requireCapableNode(registry, {
      difficulty,
      model: extra.model,
      exclude: new Set(),
      ...(context ? { context } : {}),
    });
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  }
}

describe("requireCapableNode", () => {
  it("refuses at once, Unavailable, when no node is online", () => {
    const err = refusal([], "SIMPLE");
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toBe(
      "no node that serves SIMPLE requests (tier BASIC or MID or PRO) is online; no node is online",
    );
  });
  it("names the tier an ADVANCED request needs and what is online instead", () => {
    const err = refusal([testNode("b1", "BASIC"), testNode("b2", "BASIC"), testNode("m", "MID")], "ADVANCED");
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toBe(
      "no node that serves ADVANCED requests (tier PRO) is online; online now: 2 BASIC nodes, 1 MID node",
    );
  });
  it("names the model when the request asks for one", () => {
    const err = refusal([testNode("llama", "BASIC")], "COMPLEX", { model: "llama" });
    expect(err?.rawMessage).toBe(
      'no node that serves COMPLEX requests (tier MID or PRO) serving a model named like "llama" is online; online ' +
        "now: 1 BASIC node",
    );
  });
  it("counts a busy or paused capable node as capable: the request may queue", () => {
    const busy = testNode("busy", "PRO");
    busy.tasks.set("t", { chunk() {}, result() {}, error() {}, lost() {} });
    const paused = testNode("paused", "MID");
    paused.paused = true;
    expect(refusal([busy], "ADVANCED")).toBeUndefined();
    expect(refusal([paused], "COMPLEX")).toBeUndefined();
  });
  it("does not count suspended nodes", () => {
    const suspended = testNode("s", "PRO");
    suspended.suspended = true;
    expect(refusal([suspended], "SIMPLE")?.rawMessage).toMatch(/is online; the connected nodes are suspended$/);
  });
  it("finds a node of the tier a request needs among many of a lower one, and follows its tier as it moves", () => {
    const basics = Array.from({ length: 50 }, (_, i) => testNode(`b${i}`, "BASIC"));
    const pro = testNode("p", "PRO");
    expect(refusal([...basics, pro], "ADVANCED")).toBeUndefined();
    expect(refusal(basics, "ADVANCED")?.code).toBe(Code.Unavailable);
    // re-tiered (its measured speed): a BASIC node that becomes PRO serves ADVANCED requests, and PRO becoming BASIC no
    // longer does
    const registry = new NodeRegistry();
    for (const node of [...basics, pro]) registry.add(node);
    const advanced = { difficulty: "ADVANCED" as const, model: undefined, exclude: new Set<string>() };
    pro.tier = "BASIC";
    expect(() => requireCapableNode(registry, advanced)).toThrow(/tier PRO/);
    basics[7]!.tier = "PRO";
    expect(() => requireCapableNode(registry, advanced)).not.toThrow();
    expect([...registry.nodesServing("ADVANCED")]).toEqual([basics[7]]);
    registry.remove(basics[7]!, "gone");
    expect([...registry.nodesServing("ADVANCED")]).toEqual([]);
  });
  it("reads only the nodes of the tiers that serve the request when one can take it", () => {
    const registry = new NodeRegistry();
    for (let i = 0; i < 20; i++) registry.add(testNode(`b${i}`, "BASIC"));
    registry.add(testNode("p", "PRO"));
    const serving = registry.nodesServing.bind(registry);
    const source = {
      nodes: () => expect.unreachable("read every node") as never,
      nodesServing: (difficulty: Difficulty) => [...serving(difficulty)],
    };
    requireCapableNode(source, { difficulty: "ADVANCED", model: undefined, exclude: new Set() });
  });
  it("reads only the nodes of the model a request names when they are fewer than the serving tiers'", () => {
    const registry = new NodeRegistry();
    for (let i = 0; i < 20; i++) registry.add(testNode(`m${i}`, "MID", { modelName: "llama-8B" }));
    registry.add(testNode("q", "MID", { modelName: "Qwen2-7B" }));
    const serving = registry.nodesServing.bind(registry);
    let read = 0;
    const source = {
      nodes: () => expect.unreachable("read every node") as never,
      nodesServing: (difficulty: Difficulty, model?: string) =>
        [...serving(difficulty, model)].map((node) => (read++, node)),
    };
    requireCapableNode(source, { difficulty: "SIMPLE", model: "qwen2", exclude: new Set() });
    expect(read).toBe(1);
  });
  it("refuses FailedPrecondition, in words, when capable nodes exist but no window holds the conversation", () => {
    const nodes = [
      testNode("small", "MID", { contextLength: 2_048 }),
      testNode("big-basic", "BASIC", { contextLength: 131_072 }),
    ];
    const err = refusal(nodes, "COMPLEX", { chars: 35_000 });
    expect(err?.code).toBe(Code.FailedPrecondition);
    expect(err?.rawMessage).toMatch(
      new RegExp(
        "^the conversation is about 10,005 tokens, more than the context .* \\(the largest holds " +
          "2,048 tokens\\); start a new chat",
      ),
    );
    expect(refusal(nodes, "COMPLEX", { chars: 4_000 })).toBeUndefined();
  });
});
