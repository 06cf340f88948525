// A real coordinator with 50 connected nodes that never answer classify assigns (real NodeService streams): chats
// are classified by the local model at once, never waiting on a silent node; a node that answered a probe is waited on
// for what its own answers took.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Difficulty, Role } from "../../../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatResponse } from "../../../gen/iris/v1/inference_pb.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "../../../test/support/coordinator.ts";
import { ScriptedNodes, type ScriptedNode } from "../../../test/support/scripted-node.ts";

const SILENT = 50;
const BUDGET_MS = 2_000;

describe("classification with many connected nodes that never answer classify", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;
  let judge: ScriptedNode;
  /** What the judge takes to answer a classify assign; changed by the tests. */
  let judgeDelayMs = 20;
  const nodes = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey }));
  const silent = () => nodes.all().filter((node) => node !== judge);

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ CLASSIFIER_NODE_BUDGET_MS: String(BUDGET_MS) });
    accountKey = await newAccountKey(coordinator.url);
    inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    // the silent nodes rank first (same tier, faster): they are probed before the judge
    await Promise.all(
      Array.from({ length: SILENT }, (_, i) => nodes.start({ nodeId: `silent-${i}`, tokensPerSecond: 28 })),
    );
    judge = await nodes.start({
      nodeId: "judge",
      tokensPerSecond: 25,
      classify: () => ({ difficulty: Difficulty.COMPLEX, delayMs: judgeDelayMs }),
    });
  });

  afterAll(async () => {
    nodes.killAll();
    await coordinator?.close();
  });

  /** The chat's Accepted event: who classified it, and how (how fast is bench/silent-nodes.ts's business). */
  async function chat(content: string) {
    let accepted: Extract<ChatResponse["event"], { case: "accepted" }>["value"] | undefined;
    for await (const response of inference.chat({
      params: { messages: [{ role: Role.USER, content }], maxTokens: 8 },
    })) {
      if (response.event.case === "accepted") accepted = response.event.value;
    }
    return { accepted };
  }

  it("the local model decides every chat at once: no silent node is waited on, each only probed once", async () => {
    for (const country of ["Peru", "Chile", "Ghana", "Laos", "Fiji"]) {
      const { accepted } = await chat(`What is the capital of ${country}?`);
      expect(accepted).toMatchObject({ classifier: "local", difficulty: Difficulty.SIMPLE });
    }
    // at once: every chat declined by the node link, none waited on (no time-out)
    expect(coordinator.classifier.stats().links.node).toEqual({
      answered: 0,
      failed: 0,
      timedOut: 0,
      abandoned: 0,
      declined: 5,
    });
    // each chat's prompt went to one node as a probe, off the request path; five different nodes
    const probed = silent().filter((node) => node.classifyAssigns.length > 0);
    expect(probed).toHaveLength(5);
    expect(probed.every((node) => node.classifyAssigns.length === 1)).toBe(true);
  });

  it("a node that answered a probe is waited on, for what its answers took: a slow answer ends the wait " +
    "early", async () => {
    // probes go to the silent nodes first (they rank higher), one per request, then to the judge
    const strangers = SILENT + 1 - silent().reduce((sum, node) => sum + node.classifyAssigns.length, 0);
    for (let i = 0; i < strangers; i++) {
      expect(
        await coordinator.classifier.classify({ messages: [{ role: "user", content: `Define word number ${i}.` }] }),
      ).toMatchObject({ classifier: "local" });
    }
    await vi.waitFor(() => expect(judge.classifyAssigns).toHaveLength(1));
    await new Promise((resolve) => setTimeout(resolve, 200)); // its probe's answer arrives (20 ms)

    // the local model calls it SIMPLE; the judge's COMPLEX decides
    const { accepted } = await chat("What is the capital of Mali?");
    expect(accepted).toMatchObject({ classifier: "node", difficulty: Difficulty.COMPLEX });

    // now it takes 1.5 s: its record (~20 ms answers → a wait of 2 × p90 + 50 ms) ends the wait long before the 2 s
    // budget
    judgeDelayMs = 1_500;
    // "local" deciding shows the wait ended before the judge's 1.5 s answer, let alone the 2 s budget
    expect(
      await coordinator.classifier.classify({ messages: [{ role: "user", content: "What is the capital of Togo?" }] }),
    ).toMatchObject({ classifier: "local" });
    expect(coordinator.classifier.stats().links.node).toMatchObject({ answered: 1, timedOut: 1, failed: 0 });

    // its late answer (within the assign's deadline) is no miss: it is asked again, with a wider wait
    judgeDelayMs = 20;
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    const again = await coordinator.classifier.classify({
      messages: [{ role: "user", content: "What is the capital of Niger?" }],
    });
    expect(again).toEqual({ difficulty: "COMPLEX", classifier: "node" });
    expect(judge.classifyAssigns).toHaveLength(4);
    expect(silent().reduce((sum, node) => sum + node.classifyAssigns.length, 0)).toBe(SILENT); // one probe each, ever
  }, 30_000);
});
