// The node link's coordinator side: who gets the classify assign, whose result counts, deadlines, and the idle-node choice.
import { afterEach, describe, expect, it, vi } from "vitest";
import { Difficulty } from "../../../gen/iris/v1/common_pb.ts";
import type { NodeTier } from "../../db/schema.ts";
import { createNodeClassifier, pickIdleClassifierNode, type ClassifierCandidate, type ClassifyRequest } from "./node.ts";

const messages = [{ role: "user", content: "Compare Rust and Go for a CLI tool." }];
const ids = ["9b2f3d5e-0000-4000-8000-000000000001", "9b2f3d5e-0000-4000-8000-000000000002"];

function setup(options: { nodes?: { id: string }[]; sendOk?: boolean; budgetMs?: number } = {}) {
  const sent: { nodeId: string; assign: ClassifyRequest }[] = [];
  const seen: ReadonlySet<string>[] = [];
  const nodes = options.nodes ?? [{ id: "n1" }];
  let next = 0;
  const classifier = createNodeClassifier({
    pickIdleNode: (classifying) => {
      seen.push(new Set(classifying));
      return nodes.find((node) => !classifying.has(node.id));
    },
    send: (node, assign) => {
      sent.push({ nodeId: node.id, assign });
      return options.sendOk ?? true;
    },
    budgetMs: options.budgetMs ?? 1_000,
    now: () => Date.now(),
    newId: () => ids[next++] ?? `id-${next}`,
  });
  return { classifier, sent, seen };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("node classifier", () => {
  it("sends the rendered conversation with a deadline and accepts the answer from that node", async () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    const { classifier, sent } = setup({ budgetMs: 1_500 });
    const answer = classifier.classify({ messages });
    expect(sent).toHaveLength(1);
    expect(sent[0]!.nodeId).toBe("n1");
    expect(sent[0]!.assign.classifyId).toBe(ids[0]);
    expect(sent[0]!.assign.prompt).toBe(`<request>\n[user]\n${messages[0]!.content}\n</request>`);
    expect(sent[0]!.assign.deadlineUnixMs).toBe(1_700_000_001_500n);
    expect(classifier.pending).toBe(1);
    expect(classifier.resolveClassifyResult(ids[0]!, Difficulty.COMPLEX, "n1")).toBe(true);
    await expect(answer).resolves.toEqual({ difficulty: "COMPLEX", classifier: "node" });
    expect(classifier.pending).toBe(0);
  });

  it("ignores a result for the id from another node, and still takes the right node's", async () => {
    const { classifier } = setup();
    const answer = classifier.classify({ messages });
    expect(classifier.resolveClassifyResult(ids[0]!, Difficulty.SIMPLE, "intruder")).toBe(false);
    expect(classifier.pending).toBe(1);
    expect(classifier.resolveClassifyResult(ids[0]!, "ADVANCED", "n1")).toBe(true);
    await expect(answer).resolves.toEqual({ difficulty: "ADVANCED", classifier: "node" });
  });

  it("ignores unknown and late results", async () => {
    vi.useFakeTimers();
    const { classifier } = setup({ budgetMs: 500 });
    expect(classifier.resolveClassifyResult("never-sent", Difficulty.SIMPLE, "n1")).toBe(false);
    const answer = classifier.classify({ messages });
    const settled = expect(answer).rejects.toThrow("node n1 did not classify within 500 ms");
    await vi.advanceTimersByTimeAsync(500);
    await settled;
    expect(classifier.pending).toBe(0);
    expect(classifier.resolveClassifyResult(ids[0]!, Difficulty.SIMPLE, "n1")).toBe(false);
  });

  it("rests a node that missed its deadline, and asks it again after the rest or a reconnect", async () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    const { classifier, sent } = setup({ nodes: [{ id: "n1" }], budgetMs: 500 });
    const missed = expect(classifier.classify({ messages })).rejects.toThrow(/did not classify/);
    await vi.advanceTimersByTimeAsync(500);
    await missed;
    await expect(classifier.classify({ messages })).rejects.toThrow("no idle node to classify with");
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    const again = classifier.classify({ messages });
    expect(sent).toHaveLength(2);
    classifier.resolveClassifyResult(ids[1]!, Difficulty.SIMPLE, "n1");
    await expect(again).resolves.toMatchObject({ difficulty: "SIMPLE" });
    // missing again, then reconnecting: the reconnect ends the rest at once
    const missedAgain = expect(classifier.classify({ messages })).rejects.toThrow(/did not classify/);
    await vi.advanceTimersByTimeAsync(500);
    await missedAgain;
    classifier.nodeGone("n1");
    void classifier.classify({ messages }).catch(() => {});
    expect(sent).toHaveLength(4);
  });

  it("fails at once on an unspecified difficulty (the node could not judge) and rests that node", async () => {
    const { classifier, sent } = setup();
    const answer = classifier.classify({ messages });
    expect(classifier.resolveClassifyResult(ids[0]!, Difficulty.UNSPECIFIED, "n1")).toBe(true);
    await expect(answer).rejects.toThrow(/could not judge/);
    await expect(classifier.classify({ messages })).rejects.toThrow("no idle node to classify with");
    expect(sent).toHaveLength(1);
  });

  it("fails at once when no node is idle or the stream is closed", async () => {
    await expect(setup({ nodes: [] }).classifier.classify({ messages })).rejects.toThrow("no idle node to classify with");
    const closed = setup({ sendOk: false });
    await expect(closed.classifier.classify({ messages })).rejects.toThrow("node n1's stream is closed");
    expect(closed.classifier.pending).toBe(0);
  });

  it("does not ask a node that is already classifying", async () => {
    const { classifier, sent, seen } = setup({ nodes: [{ id: "n1" }, { id: "n2" }] });
    const first = classifier.classify({ messages });
    const second = classifier.classify({ messages });
    expect(sent.map((s) => s.nodeId)).toEqual(["n1", "n2"]);
    expect([...seen[1]!]).toEqual(["n1"]);
    classifier.resolveClassifyResult(ids[1]!, Difficulty.SIMPLE, "n2");
    classifier.resolveClassifyResult(ids[0]!, Difficulty.COMPLEX, "n1");
    await expect(second).resolves.toMatchObject({ difficulty: "SIMPLE" });
    await expect(first).resolves.toMatchObject({ difficulty: "COMPLEX" });
  });

  it("fails a node's pending classifications when its stream ends, and on abort", async () => {
    const { classifier } = setup({ nodes: [{ id: "n1" }, { id: "n2" }] });
    const onGone = classifier.classify({ messages });
    const controller = new AbortController();
    const onAbort = classifier.classify({ messages, signal: controller.signal });
    classifier.nodeGone("n1");
    await expect(onGone).rejects.toThrow("node n1 disconnected while classifying");
    controller.abort();
    await expect(onAbort).rejects.toThrow(/aborted/);
    expect(classifier.pending).toBe(0);
  });
});

describe("pickIdleClassifierNode", () => {
  const node = (id: string, tier: NodeTier, tokensPerSecond: number, extra: Partial<ClassifierCandidate> = {}): ClassifierCandidate => ({
    id,
    tier,
    connected: true,
    paused: false,
    tasks: { size: 0 },
    capabilities: { tokensPerSecond },
    ...extra,
  });

  it("never picks a node busy with user work, paused, gone, or already classifying", () => {
    const nodes = [
      node("busy", "PRO", 90, { tasks: { size: 1 } }),
      node("paused", "PRO", 90, { paused: true }),
      node("gone", "PRO", 90, { connected: false }),
      node("classifying", "PRO", 90),
    ];
    expect(pickIdleClassifierNode(nodes, new Set(["classifying"]))).toBeUndefined();
  });

  it("prefers the highest tier, then the fastest", () => {
    const nodes = [node("basic", "BASIC", 200), node("mid-slow", "MID", 12), node("mid-fast", "MID", 25)];
    expect(pickIdleClassifierNode(nodes, new Set())?.id).toBe("mid-fast");
    expect(pickIdleClassifierNode([...nodes, node("pro", "PRO", 5)], new Set())?.id).toBe("pro");
  });
});
