// Graceful quit of the real agent without the TUI (SIGTERM): running tasks finish within the grace period, or are
// handed back (TaskError CANCELLED) and finished by another node; the agent exits 0 either way.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { startAgentNetwork, type AgentNetwork, type AgentProcess } from "./support/agent-process.ts";
import type { TestCoordinator } from "./support/coordinator.ts";

const question = { role: Role.USER, content: "Translate 'good morning' to Italian." };

describe("an agent told to stop (SIGTERM) while it serves", () => {
  let network: AgentNetwork;
  let coordinator: TestCoordinator;
  const agent = (nodeId: string, env: Record<string, string> = {}) => network.agent(nodeId, env);

  beforeAll(async () => {
    network = await startAgentNetwork({ model: { contextLength: 8192 } });
    coordinator = network.coordinator;
  }, 60_000);
  afterAll(async () => {
    await network?.close();
  });

  /** Streams a chat; after `killAfter` tokens sends SIGTERM to the node serving it. */
  async function chatAndStop(byNode: Map<string, AgentProcess>, maxTokens: number, killAfter: number) {
    const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    let serving = "";
    let tokens = 0;
    let done;
    for await (const response of inference.chat({ params: { messages: [question], maxTokens } })) {
      if (response.event.case === "accepted") serving = response.event.value.nodeId;
      if (response.event.case === "token" && ++tokens === killAfter) byNode.get(serving)!.kill("SIGTERM");
      if (response.event.case === "done") done = response.event.value;
    }
    return { serving, tokens, done };
  }

  it("lets a running task finish within the grace period, then exits 0", async () => {
    // at debug: a completed task's "task ended" line
    const node = await agent("quit-finishes", { LOG_LEVEL: "debug" });
    const { serving, done } = await chatAndStop(new Map([["quit-finishes", node]]), 300, 10);
    expect(serving).toBe("quit-finishes");
    expect(done?.nodeIds).toEqual(["quit-finishes"]);
    expect(done?.usage?.completionTokens).toBe(300);
    expect(await node.exited).toBe(0);
    expect(node.logs.find((l) => l.msg === "task ended")).toMatchObject({ outcome: "completed", tokens: 300 });
    expect(node.logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        "quitting gracefully",
        "paused: taking no new tasks",
        "quitting: waiting for the running tasks",
        "stopped",
      ]),
    );
  }, 60_000);

  it("hands the task back once the grace period is over (here none); another node finishes the answer; exits " +
    "0", async () => {
    const [a, b] = await Promise.all([
      agent("quit-a", { SHUTDOWN_GRACE_MS: "0" }),
      agent("quit-b", { SHUTDOWN_GRACE_MS: "0" }),
    ]);
    const { serving, tokens, done } = await chatAndStop(
      new Map([
        ["quit-a", a],
        ["quit-b", b],
      ]),
      1500,
      20,
    );
    const quitter = serving === "quit-a" ? a : b;
    expect(done?.nodeIds).toHaveLength(2);
    expect(done?.nodeIds[0]).toBe(serving);
    expect(done?.usage?.completionTokens).toBe(1500);
    expect(tokens).toBeGreaterThan(20);
    expect(await quitter.exited).toBe(0);
    expect(quitter.logs.find((l) => l.msg === "task ended")).toMatchObject({ outcome: "handed_back" });
    expect(quitter.logs.map((l) => l.msg)).toContain("quitting: handing the running tasks back to the coordinator");
    // the coordinator re-routed it because the node said so, not because the stream broke
    expect(coordinator.logs.find((l) => l.msg === "re-routing the task")?.reason).toMatch(
      /CANCELLED: the node is shutting down/,
    );
  }, 60_000);
});
