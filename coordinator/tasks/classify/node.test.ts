// The node link's coordinator side: who is waited on and for how long (a node's own record), probes of nodes without
// one, whose result counts, deadlines and rests, and the idle-node choice.
import { afterEach, describe, expect, it, vi } from "vitest";
import { Difficulty } from "../../../gen/iris/v1/common_pb.ts";
import type { NodeTier } from "../../../common/vocabulary.ts";
import { ClassifierBudgetExceeded, ClassifierLinkDeclined } from "./chain.ts";
import {
  createNodeClassifier,
  pickIdleClassifierNodes,
  type ClassifierCandidate,
  type ClassifyRequest,
  type IdleKind,
} from "./node.ts";

const messages = [{ role: "user", content: "Compare Rust and Go for a CLI tool." }];
const T0 = 1_700_000_000_000;

function setup(options: { nodes?: string[]; sendOk?: boolean; budgetMs?: number } = {}) {
  const sent: { nodeId: string; assign: ClassifyRequest }[] = [];
  const nodes = (options.nodes ?? ["n1"]).map((id) => ({ id }));
  let next = 0;
  const classifier = createNodeClassifier({
    // the first node of each kind, in the list's order
    pickIdleNodes: (kindOf) => {
      const found: Partial<Record<IdleKind, { id: string }>> = {};
      for (const node of nodes) {
        const kind = kindOf(node.id);
        if (kind !== undefined) found[kind] ??= node;
      }
      return found;
    },
    send: (node, assign) => {
      sent.push({ nodeId: node.id, assign });
      return options.sendOk ?? true;
    },
    budgetMs: options.budgetMs ?? 1_000,
    now: () => Date.now(),
    newId: () => `id-${++next}`,
  });
  /** The id of the latest assign sent to `nodeId`. */
  const lastId = (nodeId: string) => sent.filter((s) => s.nodeId === nodeId).at(-1)!.assign.classifyId;
  /** Probes `nodeId` (no node known yet, or it is the only stranger left) and answers after `latencyMs`. */
  async function teach(nodeId: string, latencyMs: number) {
    await expect(classifier.classify({ messages })).rejects.toBeInstanceOf(ClassifierLinkDeclined);
    await vi.advanceTimersByTimeAsync(latencyMs);
    expect(classifier.resolveClassifyResult(lastId(nodeId), Difficulty.SIMPLE, nodeId)).toBe(true);
  }
  return { classifier, sent, lastId, teach };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("node classifier: nobody known to judge", () => {
  it("declines at once and probes an idle node with the conversation and the full deadline", async () => {
    vi.useFakeTimers({ now: T0 });
    const { classifier, sent } = setup({ budgetMs: 1_500 });
    await expect(classifier.classify({ messages })).rejects.toThrow(
      new ClassifierLinkDeclined("no idle node known to judge; probing n1"),
    );
    expect(sent).toHaveLength(1);
    expect(sent[0]!.assign).toEqual({
      classifyId: "id-1",
      prompt: `<request>\n[user]\n${messages[0]!.content}\n</request>`,
      deadlineUnixMs: BigInt(T0 + 1_500),
    });
    expect(classifier.pending).toBe(1);
    expect(classifier.waitMs("n1")).toBeUndefined();
  });

  it("begin declines with the same words as a value, and asks a known node as classify does", async () => {
    vi.useFakeTimers({ now: T0 });
    const { classifier, sent, teach, lastId } = setup({ nodes: ["n1"] });
    expect(classifier.begin({ messages })).toEqual({ declined: "no idle node known to judge; probing n1" });
    expect(sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000); // the probe missed
    expect(classifier.begin({ messages })).toEqual({ declined: "no idle node known to judge" });
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    await teach("n1", 20);
    const answer = classifier.begin({ messages });
    expect(answer).toBeInstanceOf(Promise);
    expect(classifier.resolveClassifyResult(lastId("n1"), Difficulty.COMPLEX, "n1")).toBe(true);
    await expect(answer).resolves.toEqual({ difficulty: "COMPLEX", classifier: "node" });
  });

  it(
    "500 silent nodes: every request declines at once, each probing another node; none is ever waited " + "on",
    async () => {
      vi.useFakeTimers({ now: T0 });
      const nodes = Array.from({ length: 500 }, (_, i) => `silent-${i}`);
      const { classifier, sent } = setup({ nodes, budgetMs: 2_000 });
      for (let i = 0; i < 600; i++)
        await expect(classifier.classify({ messages })).rejects.toBeInstanceOf(ClassifierLinkDeclined);
      // one probe each; the last 100 requests found nobody idle
      expect(new Set(sent.map((s) => s.nodeId)).size).toBe(500);
      await vi.advanceTimersByTimeAsync(2_000);
      expect(classifier.pending).toBe(0);
      // all missed and rest: no more probes for 5 minutes
      await expect(classifier.classify({ messages })).rejects.toThrow("no idle node known to judge");
      expect(sent).toHaveLength(500);
    },
  );
});

describe("node classifier: a node with a record", () => {
  it("a probe's answer gives the node a record; the next request waits on it and takes its answer", async () => {
    vi.useFakeTimers({ now: T0 });
    const { classifier, sent, lastId, teach } = setup();
    await teach("n1", 100);
    expect(classifier.waitMs("n1")).toBe(2 * 100 + 50);
    const answer = classifier.classify({ messages });
    expect(sent).toHaveLength(2);
    expect(sent[1]!.assign.deadlineUnixMs).toBe(BigInt(Date.now() + 1_000)); // the node itself still has the budget
    expect(classifier.resolveClassifyResult(lastId("n1"), Difficulty.COMPLEX, "n1")).toBe(true);
    await expect(answer).resolves.toEqual({ difficulty: "COMPLEX", classifier: "node" });
    expect(classifier.pending).toBe(0);
  });

  it("stops waiting at the node's own wait; the assign stays out, and its late answer widens the wait", async () => {
    vi.useFakeTimers({ now: T0 });
    const { classifier, sent, lastId, teach } = setup({ budgetMs: 2_000 });
    await teach("n1", 100);
    const answer = classifier.classify({ messages });
    const settled = expect(answer).rejects.toBeInstanceOf(ClassifierBudgetExceeded);
    await vi.advanceTimersByTimeAsync(249);
    expect(classifier.pending).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await settled;
    // still working on it: not asked again, not probed either
    await expect(classifier.classify({ messages })).rejects.toThrow("no idle node known to judge");
    expect(sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(500);
    expect(classifier.resolveClassifyResult(lastId("n1"), Difficulty.COMPLEX, "n1")).toBe(true);
    expect(classifier.waitMs("n1")).toBe(2 * 750 + 50); // p90 of [100, 750]
  });

  it("never waits longer than the budget; a node that lets it pass rests and loses its record", async () => {
    vi.useFakeTimers({ now: T0 });
    const { classifier, sent, teach } = setup({ budgetMs: 1_000 });
    await teach("n1", 900);
    expect(classifier.waitMs("n1")).toBe(1_000);
    const missed = expect(classifier.classify({ messages })).rejects.toThrow("node n1 did not classify within 1000 ms");
    await vi.advanceTimersByTimeAsync(1_000);
    await missed;
    expect(classifier.waitMs("n1")).toBeUndefined();
    await expect(classifier.classify({ messages })).rejects.toThrow("no idle node known to judge");
    expect(sent).toHaveLength(2);
    // after the rest it is a stranger again: probed, not waited on
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    await expect(classifier.classify({ messages })).rejects.toThrow("probing n1");
    expect(sent).toHaveLength(3);
  });

  it("an unspecified difficulty (the node could not judge) fails at once and rests the node", async () => {
    vi.useFakeTimers({ now: T0 });
    const { classifier, sent, lastId, teach } = setup();
    await teach("n1", 100);
    const answer = classifier.classify({ messages });
    expect(classifier.resolveClassifyResult(lastId("n1"), Difficulty.UNSPECIFIED, "n1")).toBe(true);
    await expect(answer).rejects.toThrow(/could not judge/);
    await expect(classifier.classify({ messages })).rejects.toThrow("no idle node known to judge");
    expect(sent).toHaveLength(2);
  });

  it("a caller that goes away stops waiting at once; the node's answer still counts for its record", async () => {
    vi.useFakeTimers({ now: T0 });
    const { classifier, lastId, teach } = setup();
    await teach("n1", 100);
    const controller = new AbortController();
    const answer = classifier.classify({ messages, signal: controller.signal });
    controller.abort();
    await expect(answer).rejects.toThrow(/aborted/);
    expect(classifier.pending).toBe(1);
    await vi.advanceTimersByTimeAsync(120);
    expect(classifier.resolveClassifyResult(lastId("n1"), Difficulty.SIMPLE, "n1")).toBe(true);
    expect(classifier.waitMs("n1")).toBe(2 * 120 + 50);
  });

  it("does not ask a node that is already classifying, and prefers a known node to probing", async () => {
    vi.useFakeTimers({ now: T0 });
    const { classifier, sent, lastId } = setup({ nodes: ["n1", "n2", "n3"] });
    // two probes out at once (the first prober is still busy), both answered: two nodes known
    await expect(classifier.classify({ messages })).rejects.toThrow("probing n1");
    await expect(classifier.classify({ messages })).rejects.toThrow("probing n2");
    classifier.resolveClassifyResult(lastId("n1"), Difficulty.SIMPLE, "n1");
    classifier.resolveClassifyResult(lastId("n2"), Difficulty.SIMPLE, "n2");
    const first = classifier.classify({ messages });
    const second = classifier.classify({ messages });
    expect(sent.slice(2).map((s) => s.nodeId)).toEqual(["n1", "n2"]);
    await expect(classifier.classify({ messages })).rejects.toThrow("probing n3");
    classifier.resolveClassifyResult(lastId("n2"), Difficulty.SIMPLE, "n2");
    classifier.resolveClassifyResult(lastId("n1"), Difficulty.COMPLEX, "n1");
    await expect(second).resolves.toMatchObject({ difficulty: "SIMPLE" });
    await expect(first).resolves.toMatchObject({ difficulty: "COMPLEX" });
  });
});

describe("node classifier: results and streams", () => {
  it("ignores unknown, foreign and expired results", async () => {
    vi.useFakeTimers({ now: T0 });
    const { classifier, lastId, teach } = setup({ budgetMs: 500 });
    expect(classifier.resolveClassifyResult("never-sent", Difficulty.SIMPLE, "n1")).toBe(false);
    await teach("n1", 10);
    const answer = classifier.classify({ messages });
    expect(classifier.resolveClassifyResult(lastId("n1"), Difficulty.SIMPLE, "intruder")).toBe(false);
    expect(classifier.pending).toBe(1);
    const settled = expect(answer).rejects.toBeInstanceOf(ClassifierBudgetExceeded);
    await vi.advanceTimersByTimeAsync(500);
    await settled;
    expect(classifier.pending).toBe(0);
    expect(classifier.resolveClassifyResult(lastId("n1"), Difficulty.SIMPLE, "n1")).toBe(false);
  });

  it("fails at once when the stream is closed, for a probe as for a wait", async () => {
    const closed = setup({ sendOk: false });
    await expect(closed.classifier.classify({ messages })).rejects.toBeInstanceOf(ClassifierLinkDeclined);
    expect(closed.classifier.pending).toBe(0);
    await expect(setup({ nodes: [] }).classifier.classify({ messages })).rejects.toThrow("no idle node known to judge");
  });

  it(
    "a stream that ends fails the node's assign now, and the reconnected node starts afresh: probed, not " + "resting",
    async () => {
      vi.useFakeTimers({ now: T0 });
      const { classifier, sent, teach } = setup();
      await teach("n1", 100);
      const answer = classifier.classify({ messages });
      classifier.nodeGone("n1");
      await expect(answer).rejects.toThrow("node n1 disconnected while classifying");
      expect(classifier.pending).toBe(0);
      expect(classifier.waitMs("n1")).toBeUndefined();
      await expect(classifier.classify({ messages })).rejects.toThrow("probing n1");
      // missing that probe rests it; a reconnect ends the rest at once
      await vi.advanceTimersByTimeAsync(1_000);
      classifier.nodeGone("n1");
      await expect(classifier.classify({ messages })).rejects.toThrow("probing n1");
      expect(sent).toHaveLength(4);
    },
  );
});

describe("pickIdleClassifierNodes", () => {
  const node = (
    id: string,
    tier: NodeTier,
    tokensPerSecond: number,
    extra: Partial<ClassifierCandidate> = {},
  ): ClassifierCandidate => ({
    id,
    tier,
    connected: true,
    paused: false,
    tasks: { size: 0 },
    capabilities: { tokensPerSecond },
    ...extra,
  });
  const anyNode = (): IdleKind => "known";
  /** The nodes as the registry's idle index lists them: by tier, one list, fastest first. */
  const idle =
    (nodes: ClassifierCandidate[]) =>
    (tier: NodeTier): ClassifierCandidate[][] => {
      const list = nodes
        .filter((n) => n.tier === tier)
        .sort((a, b) => b.capabilities.tokensPerSecond - a.capabilities.tokensPerSecond);
      return list.length > 0 ? [list] : [];
    };

  it("never picks a node busy with user work, paused, gone, or not eligible", () => {
    const nodes = [
      node("busy", "PRO", 90, { tasks: { size: 1 } }),
      node("paused", "PRO", 90, { paused: true }),
      node("gone", "PRO", 90, { connected: false }),
      node("classifying", "PRO", 90),
    ];
    expect(pickIdleClassifierNodes(idle(nodes), (id) => (id === "classifying" ? undefined : "known"))).toEqual({});
  });

  it("prefers the highest tier, then the fastest", () => {
    const nodes = [node("basic", "BASIC", 200), node("mid-slow", "MID", 12), node("mid-fast", "MID", 25)];
    expect(pickIdleClassifierNodes(idle(nodes), anyNode).known?.id).toBe("mid-fast");
    expect(pickIdleClassifierNodes(idle([...nodes, node("pro", "PRO", 5)]), anyNode).known?.id).toBe("pro");
  });

  it("takes the fastest of each list's first known node, and reads a list only up to it", () => {
    // two lists of one tier (nodes of 4 slots and of 1), each fastest first
    const four = [node("four-new", "MID", 25), node("four-known", "MID", 20), node("four-slow", "MID", 5)];
    const one = [node("one-new", "MID", 30), node("one-known", "MID", 22), node("one-slow", "MID", 1)];
    const asked: string[] = [];
    const picked = pickIdleClassifierNodes(
      (tier) => (tier === "MID" ? [four, one] : []),
      (id) => {
        asked.push(id);
        return id.includes("new") ? "stranger" : "known";
      },
    );
    expect(picked).toEqual({ known: one[1] });
    expect(asked).toEqual(["four-new", "four-known", "one-new", "one-known"]);
  });

  it("a known node of a lower tier before any stranger; the best stranger only when none is known", () => {
    const nodes = [node("known-mid", "MID", 20), node("new-pro", "PRO", 10), node("known-basic", "BASIC", 80)];
    const known = new Set(["known-mid", "known-basic"]);
    const picked = pickIdleClassifierNodes(idle(nodes), (id) => (known.has(id) ? "known" : "stranger"));
    expect(picked).toEqual({ known: nodes[0] });
    const strangers = [node("new-mid", "MID", 50), ...nodes];
    expect(pickIdleClassifierNodes(idle(strangers), () => "stranger")).toEqual({ stranger: nodes[1] });
    expect(pickIdleClassifierNodes(idle([strangers[0]!, nodes[0]!]), () => "stranger")).toEqual({
      stranger: strangers[0],
    });
    expect(pickIdleClassifierNodes(idle([strangers[0]!, nodes[2]!]), () => "stranger")).toEqual({
      stranger: strangers[0],
    });
  });
});
