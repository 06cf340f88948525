// Canaries judge honesty, not skill: how each node is judged (peer, known answer, speed only), and a long simulated
// run in which an honest tiny model is never judged while a node claiming a big model it does not run is.
import pino from "pino";
import { describe, expect, it } from "vitest";
import { liveNode } from "../../test/support/live-nodes.ts";
import { NodeRegistry, type LiveNode } from "../nodes/registry.ts";
import { planCanary, runCanary, type CanaryDeps } from "./canary.ts";
import type { MismatchEvidence, MismatchRecorder } from "./division/mismatch.ts";
import type { PartResult, PartSpec } from "./part-spec.ts";

/** A live node serving `model` (name-quantization, e.g. "tiny-F32") of `parameters`, on `account`. */
function node(
  id: string,
  account: string,
  model: string,
  parameters: number,
  options: { sha?: string; reputation?: number } = {},
): LiveNode {
  const live = liveNode(id, account, "BASIC", options.reputation ?? 100, 0);
  const quantization = model.split("-").at(-1)!;
  Object.assign(live.capabilities, {
    modelName: model,
    quantization,
    parameterCount: parameters,
    maxConcurrentTasks: 1,
    ...(options.sha ? { modelSha256: options.sha } : {}),
  });
  return live;
}

describe("planCanary", () => {
  const sha = (c: string) => c.repeat(64);
  it.each([
    { what: "a tiny model alone: speed only", others: [], target: ["tiny-F32", 113_000], plan: "speed" },
    { what: "a 3B model alone: a known answer", others: [], target: ["llama-3B-Q4_K_M", 3e9], plan: "known_answer" },
    { what: "a 3B model at Q2 counts as 1.5B: speed only", others: [], target: ["llama-3B-Q2_K", 3e9], plan: "speed" },
    {
      what: "a node claiming 405B F16: a known answer",
      others: [],
      target: ["huge-405B-F16", 405e9],
      plan: "known_answer",
    },
    {
      what: "a tiny model with a peer on another account: compared with it",
      others: [["peer", "bob", "tiny-F32", 113_000]],
      target: ["tiny-F32", 113_000],
      plan: "peer:peer",
    },
    {
      what: "a peer on the same account does not count",
      others: [["mine", "alice", "tiny-F32", 113_000]],
      target: ["tiny-F32", 113_000],
      plan: "speed",
    },
    {
      what: "another quantization is another model",
      others: [["peer", "bob", "tiny-Q8_0", 113_000]],
      target: ["tiny-F32", 113_000],
      plan: "speed",
    },
    {
      what: "a differing file fingerprint is another model",
      others: [["peer", "bob", "tiny-F32", 113_000, sha("b")]],
      target: ["tiny-F32", 113_000, sha("a")],
      plan: "speed",
    },
    {
      what: "the same fingerprint is a peer",
      others: [["peer", "bob", "tiny-F32", 113_000, sha("a")]],
      target: ["tiny-F32", 113_000, sha("a")],
      plan: "peer:peer",
    },
    {
      what: "the most reputable peer first",
      others: [
        ["low", "bob", "tiny-F32", 113_000, undefined, 90],
        ["high", "carol", "tiny-F32", 113_000, undefined, 150],
      ],
      target: ["tiny-F32", 113_000],
      plan: "peer:high",
    },
  ] as const)("$what", ({ others, target, plan }) => {
    const registry = new NodeRegistry();
    const self = node("target", "alice", target[0], target[1], { sha: target[2] });
    registry.add(self);
    for (const [id, account, model, parameters, peerSha, reputation] of others as readonly (readonly [
      string,
      string,
      string,
      number,
      string?,
      number?,
    ])[]) {
      registry.add(node(id, account, model, parameters, { sha: peerSha, reputation }));
    }
    const planned = planCanary(self, registry.nodes());
    expect(planned.kind === "peer" ? `peer:${planned.peer.id}` : planned.kind).toBe(plan);
  });
});

/** A registry, a fake part runner whose nodes answer by `answer`, and the mismatches recorded. */
function simulation(answer: (node: LiveNode, spec: Omit<PartSpec, "signal">) => string) {
  const registry = new NodeRegistry();
  const judged: { nodeId: string; evidence: MismatchEvidence }[] = [];
  const runs: Omit<PartSpec, "signal">[] = [];
  let seed = 7;
  const deps: CanaryDeps = {
    registry,
    logger: pino({ level: "silent" }),
    mismatches: {
      record: (result: PartResult, evidence: MismatchEvidence) => judged.push({ nodeId: result.node.id, evidence }),
    } as unknown as MismatchRecorder,
    similarity: 0.9,
    random: () => (seed = (seed * 16807) % 2147483647) / 2147483647,
    async run(spec) {
      runs.push(spec);
      const only = registry.get(spec.only!)!;
      const text = answer(only, spec);
      return {
        taskId: spec.taskId,
        text,
        pieces: [text],
        promptTokens: 9,
        completionTokens: 20,
        finishReason: "stop",
        node: only,
        nodeIds: [only.id],
        firstTokenAt: 0,
        completedAt: 0,
        judge() {},
      };
    },
  };
  return { registry, deps, judged, runs };
}

/** What a tiny random-weight model says: words that depend on the prompt and seed (at temperature 0, only on them). */
function tinyModel(_: LiveNode, spec: Omit<PartSpec, "signal">): string {
  const text = `${spec.messages[0]!.content}|${spec.temperature === 0 ? spec.seed : Math.random()}`;
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return Array.from(
    { length: 20 },
    (_, i) => ["the", "of", "iris", "node", "token", "model", "hot", "word"][(h >>> (i % 24)) % 8],
  ).join(" ");
}

describe("a long run of canaries", () => {
  it(
    "never judges an honest tiny model alone (speed only), over 2,000 canaries: 2 weeks at the default 10 " + "minutes",
    async () => {
      const { registry, deps, judged, runs } = simulation(tinyModel);
      const tiny = node("tiny", "alice", "Iris Tiny Test Model-F32", 113_000);
      registry.add(tiny);
      for (let i = 0; i < 2000; i++) await runCanary(deps, tiny);
      expect(judged).toEqual([]);
      expect(runs).toHaveLength(2000);
      // what it was asked is a paragraph long enough to be a speed sample, not a test it could fail
      expect(
        runs.every(
          (r) =>
            r.messages[0]!.content.startsWith("Write a short paragraph") &&
            r.maxTokens === 64 &&
            r.classifier === "canary",
        ),
      ).toBe(true);
    },
  );

  it(
    "compares two honest tiny models of two accounts with each other: never judged, and their identity " + "verified",
    async () => {
      const { registry, deps, judged, runs } = simulation(tinyModel);
      const a = node("tiny-a", "alice", "Iris Tiny Test Model-F32", 113_000, { sha: "c".repeat(64) });
      const b = node("tiny-b", "bob", "Iris Tiny Test Model-F32", 113_000, { sha: "c".repeat(64) });
      registry.add(a);
      registry.add(b);
      for (let i = 0; i < 500; i++) await runCanary(deps, i % 2 === 0 ? a : b);
      expect(judged).toEqual([]);
      expect(runs).toHaveLength(1000);
      // both at temperature 0 with one seed; the peer's row names the target's as its parent
      for (let i = 0; i < runs.length; i += 2) {
        expect(runs[i + 1]).toMatchObject({
          temperature: 0,
          seed: runs[i]!.seed,
          parentId: runs[i]!.taskId,
          messages: runs[i]!.messages,
        });
      }
      expect(a.measured.identity).toMatchObject({ verdict: "verified", peer: "tiny-b" });
      expect(b.measured.identity).toMatchObject({ verdict: "verified", peer: "tiny-a" });
    },
  );

  it("catches a node that claims 405B and answers like a tiny model, by the known answer", async () => {
    const { registry, deps, judged } = simulation(tinyModel);
    const liar = node("liar", "mallory", "Llama-3.1-405B-Instruct-F16", 405e9);
    registry.add(liar);
    for (let i = 0; i < 3; i++) await runCanary(deps, liar);
    expect(judged.map((j) => [j.nodeId, j.evidence.check, j.evidence.referenceFrom])).toEqual(
      Array(3).fill(["liar", "canary", "known answer"]),
    );
  });

  it("judges the less reputable of two disagreeing peers, and nobody between equals", async () => {
    const { registry, deps, judged } = simulation((n, spec) =>
      n.id === "fake" ? "something else entirely, word for word" : tinyModel(n, spec),
    );
    const honest = node("honest", "alice", "tiny-F32", 113_000, { reputation: 180 });
    const fake = node("fake", "mallory", "tiny-F32", 113_000, { reputation: 100 });
    registry.add(honest);
    registry.add(fake);
    await runCanary(deps, fake);
    await runCanary(deps, honest);
    expect(judged.map((j) => [j.nodeId, j.evidence.referenceFrom])).toEqual([
      ["fake", "honest"],
      ["fake", "honest"],
    ]);
    expect(fake.measured.identity).toMatchObject({ verdict: "contradicted", peer: "honest" });
    honest.reputation = 100;
    await runCanary(deps, fake);
    expect(judged).toHaveLength(2);
  });
});
