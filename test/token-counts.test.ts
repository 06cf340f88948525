// One token count end to end: real agents on a model whose tokens come out several at a time report exactly
// max_tokens (gRPC and /v1) and record it, and failover leaves the next node the budget the chunks' tokens leave.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import { startAgentNetwork, type AgentNetwork } from "./support/agent-process.ts";
import { startTestCoordinator, newAccountKey, type TestCoordinator } from "./support/coordinator.ts";
import { ScriptedNodes } from "./support/scripted-node.ts";

const question = { role: Role.USER, content: "Translate 'thank you' to German." };

async function chat(url: string, maxTokens: number, content = question.content) {
  const events: ChatResponse["event"][] = [];
  for await (const response of createClient(InferenceService, createGrpcTransport({ baseUrl: url })).chat({
    params: { messages: [{ ...question, content }], maxTokens },
  })) {
    events.push(response.event);
  }
  const accepted = events.find((e) => e.case === "accepted");
  const done = events.at(-1);
  if (accepted?.case !== "accepted" || done?.case !== "done")
    throw new Error(`no answer: ${JSON.stringify(events.at(-1))}`);
  const text = events.flatMap((e) => (e.case === "token" ? [e.value.text] : [])).join("");
  return { taskId: accepted.value.taskId, done: done.value, text };
}

async function recordedTokens(coordinator: TestCoordinator, taskIds: string[]): Promise<Map<string, number>> {
  await coordinator.journal.flush();
  const rows = await coordinator.db
    .selectFrom("tasks")
    .select(["id", "completion_tokens"])
    .where("id", "in", taskIds)
    .execute();
  return new Map(rows.map((row) => [row.id, row.completion_tokens]));
}

describe("a real agent on a model that releases several tokens at once", () => {
  let network: AgentNetwork;

  beforeAll(async () => {
    // byte tokens: pieces of UTF-8 characters, which llama.cpp's binding hands over together
    network = await startAgentNetwork({ model: { byteTokens: true } });
    // at debug: a completed task's "task ended" line, which says what the agent counted
    await network.agent("bytes-a", { LOG_LEVEL: "debug" });
  }, 60_000);
  afterAll(async () => {
    await network?.close();
  });

  it("reports and records exactly max_tokens on 50 answers over gRPC; the agent counts the same", async () => {
    const budgets = [8, 24, 8, 450, 1];
    const answers: { taskId: string; maxTokens: number; usage: number; finish: string }[] = [];
    for (let i = 0; i < 50; i++) {
      const maxTokens = budgets[i % budgets.length]!;
      const { taskId, done } = await chat(network.coordinator.url, maxTokens, `${question.content} (${i})`);
      answers.push({ taskId, maxTokens, usage: done.usage?.completionTokens ?? -1, finish: done.finishReason });
    }
    expect(answers.filter((a) => a.usage !== a.maxTokens || a.finish !== "length")).toEqual([]);
    const recorded = await recordedTokens(
      network.coordinator,
      answers.map((a) => a.taskId),
    );
    expect(answers.filter((a) => recorded.get(a.taskId) !== a.maxTokens)).toEqual([]);
    // the agent's own count (its log line, and the terminal UI's task count, set from the same number)
    const agent = network.agents.get("bytes-a")!;
    const last = answers.at(-1)!;
    await agent.waitForLog((line) => line.msg === "task ended" && line.taskId === last.taskId);
    const ended = new Map(
      agent.logs
        .filter((line) => line.msg === "task ended")
        .map((line) => [line.taskId as string, line.tokens as number]),
    );
    expect(answers.filter((a) => ended.get(a.taskId) !== a.maxTokens)).toEqual([]);
  }, 120_000);

  it("reports exactly max_tokens through /v1/chat/completions, streamed or not", async () => {
    for (const stream of [false, true]) {
      for (let i = 0; i < 5; i++) {
        const response = await fetch(`${network.coordinator.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${network.accountKey}` },
          body: JSON.stringify({
            model: "auto",
            messages: [{ role: "user", content: `Translate 'red' to German (${i}).` }],
            max_tokens: 24,
            stream,
            ...(stream ? { stream_options: { include_usage: true } } : {}),
          }),
        });
        expect(response.status).toBe(200);
        const body = await response.text();
        const usage = stream
          ? body
              .split("\n")
              .filter((line) => line.startsWith("data: {"))
              .map((line) => JSON.parse(line.slice(6)))
              .find((event) => event.usage)?.usage
          : JSON.parse(body).usage;
        expect(usage?.completion_tokens).toBe(24);
      }
    }
  }, 60_000);
});

describe("failover when chunks carry several tokens", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  const nodes = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey }));

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ HEARTBEAT_INTERVAL_MS: "200" });
    accountKey = await newAccountKey(coordinator.url);
  });
  afterAll(async () => {
    nodes.killAll();
    await coordinator?.close();
  });

  it("gives the next node what the first node's tokens left of the budget, and the usage adds up", async () => {
    // two chunks of 3 tokens each, then the node dies: 6 of 20 spent
    const dying = await nodes.start({
      nodeId: "dies",
      tokensPerSecond: 29,
      script: () => ({ tokens: ["Un", " deux", " trois"], chunkTokens: 3, dieAfter: 2, delayMs: 5 }),
    });
    const rescuer = await nodes.start({
      nodeId: "rescuer",
      tokensPerSecond: 11,
      script: () => ({ tokens: [" trois", " quatre"], chunkTokens: 3 }),
    });
    const { taskId, done, text } = await chat(coordinator.url, 20);
    expect(text).toBe("Un deux trois quatre");
    expect(done.nodeIds).toEqual(["dies", "rescuer"]);
    expect(rescuer.assigns[0]!.maxTokens).toBe(14);
    expect(done.usage?.completionTokens).toBe(12);
    expect((await recordedTokens(coordinator, [taskId])).get(taskId)).toBe(12);
    dying.kill();
    rescuer.kill();
    nodes.killAll();
  });

  it("never records more than max_tokens, whatever the next node claims", async () => {
    const dying = await nodes.start({
      nodeId: "dies-2",
      tokensPerSecond: 29,
      script: () => ({ tokens: ["a", "b", "c"], chunkTokens: 4, dieAfter: 2, delayMs: 5 }),
    });
    // asked for 2 (10 - 8), it answers 2 chunks of 4 tokens
    const greedy = await nodes.start({
      nodeId: "greedy",
      tokensPerSecond: 11,
      script: () => ({ tokens: ["c", "d"], chunkTokens: 4 }),
    });
    const { taskId, done } = await chat(coordinator.url, 10);
    expect(greedy.assigns[0]!.maxTokens).toBe(2);
    expect(done.usage?.completionTokens).toBe(10);
    expect((await recordedTokens(coordinator, [taskId])).get(taskId)).toBe(10);
    dying.kill();
    greedy.kill();
    nodes.killAll();
  });
});
