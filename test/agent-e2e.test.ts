// End to end with the real agent: coordinator + agent processes running llama.cpp on the generated tiny model,
// over real sockets and real PostgreSQL; plus an agent on the OpenAI-compatible backend against LM Studio's stand-in.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { NetworkService } from "../gen/iris/v1/network_pb.ts";
import { writeTinyGguf } from "./fixtures/tiny-gguf.ts";
import { startCoordinator } from "../coordinator/app.ts";
import { loadConfig } from "../coordinator/config.ts";
import { createLogger } from "../coordinator/logger.ts";
import { startAgent, startAgentNetwork, type AgentNetwork } from "./support/agent-process.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { connectFailure } from "./support/errors.ts";
import { startLmStudioStandin } from "./support/lmstudio-standin.ts";

const question = { role: Role.USER, content: "Translate 'thank you' to German." };

describe("real agents on the tiny llama.cpp model", () => {
  let network: AgentNetwork;
  let coordinator: TestCoordinator;
  const agent = (nodeId: string, env: Record<string, string> = {}) => network.agent(nodeId, env);

  beforeAll(async () => {
    network = await startAgentNetwork({ model: { contextLength: 8192 } });
    coordinator = network.coordinator;
    await Promise.all([agent("tiny-a"), agent("tiny-b")]);
  }, 60_000);
  afterAll(async () => {
    await network?.close();
  });

  it("streams a chat answer from an agent over gRPC and over Connect, as tokens arrive", async () => {
    for (const transport of [
      createGrpcTransport({ baseUrl: coordinator.url }),
      createConnectTransport({ baseUrl: coordinator.url, httpVersion: "1.1" }),
    ]) {
      const tokens: string[] = [];
      let done;
      for await (const response of createClient(InferenceService, transport).chat({
        params: { messages: [question], maxTokens: 24 },
      })) {
        if (response.event.case === "token") tokens.push(response.event.value.text);
        if (response.event.case === "done") done = response.event.value;
      }
      // streamed: several events (chunks that queue up while the client reads are sent together, so at most 24)
      expect(tokens.length).toBeGreaterThan(1);
      expect(tokens.length).toBeLessThanOrEqual(24);
      expect(done?.usage?.completionTokens).toBe(24);
      expect(done?.finishReason).toBe("length");
      expect(["tiny-a", "tiny-b"]).toContain(done?.nodeId);
    }
  });

  it("sends the model file's fingerprint: two agents on the same GGUF agree, as ListNodes shows", async () => {
    const [a, b] = ["tiny-a", "tiny-b"].map((id) => coordinator.registry.get(id)!.capabilities.modelSha256);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toBe(a);
    const listed = await createClient(NetworkService, createGrpcTransport({ baseUrl: coordinator.url })).listNodes({
      onlineOnly: true,
    });
    expect(listed.nodes.find((n) => n.nodeId === "tiny-a")?.verification).toMatchObject({
      modelSha256: a,
      modelEvidence: "file fingerprint matches 1 other node",
    });
  });

  it("streams through /v1/chat/completions to the official openai package", async () => {
    const openai = new OpenAI({ baseURL: `${coordinator.url}/v1`, apiKey: "not-needed" });
    const stream = await openai.chat.completions.create({
      model: "auto",
      messages: [{ role: "user", content: question.content }],
      max_tokens: 10,
      stream: true,
    });
    const pieces: string[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice?.delta.content) pieces.push(choice.delta.content);
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.length).toBeLessThanOrEqual(10);
    expect(finish).toBe("length");
  });

  it("finishes the answer on the other agent when the serving agent is killed mid-answer", async () => {
    const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    const byNode = new Map(["tiny-a", "tiny-b"].map((id) => [id, network.agents.get(id)!]));
    let servingNode = "";
    let tokens = 0;
    let done;
    for await (const response of inference.chat({ params: { messages: [question], maxTokens: 4000 } })) {
      if (response.event.case === "accepted") servingNode = response.event.value.nodeId;
      if (response.event.case === "token" && ++tokens === 20) byNode.get(servingNode)!.kill("SIGKILL");
      if (response.event.case === "done") done = response.event.value;
    }
    expect(done?.nodeIds).toHaveLength(2);
    expect(done?.nodeIds[0]).toBe(servingNode);
    expect(done?.nodeIds[1]).not.toBe(servingNode);
    expect(done?.usage?.completionTokens).toBe(4000);
    expect(tokens).toBeGreaterThan(20);
  }, 60_000);

  it("refuses an agent with an unknown account key: clear message, exit code 3, no retries", async () => {
    const refused = startAgent({
      COORDINATOR_URL: coordinator.url,
      IRIS_ACCOUNT_KEY: "1111 2222 3333 4444",
      NODE_ID: "refused",
      IRIS_MODEL: network.modelPath,
    });
    network.agents.set("refused", refused);
    expect(await refused.exited).toBe(3);
    expect(refused.stderr()).toContain("unknown or revoked account key");
  });

  it("exits with code 2 and names the variable when the account key is missing", async () => {
    const missing = startAgent({ COORDINATOR_URL: coordinator.url, NODE_ID: "nokey", IRIS_MODEL: network.modelPath });
    expect(await missing.exited).toBe(2);
    expect(missing.stderr()).toContain("IRIS_ACCOUNT_KEY is missing");
  });
});

describe("an agent whose coordinator restarts", () => {
  it("reconnects with backoff and registers again on the restarted coordinator", async () => {
    const modelPath = join(mkdtempSync(join(tmpdir(), "iris-restart-")), "tiny.gguf");
    writeTinyGguf(modelPath);
    // an on-disk embedded database survives the restart, as a real deployment's would
    const env = {
      HOST: "127.0.0.1",
      PORT: "0",
      DATA_DIR: mkdtempSync(join(tmpdir(), "iris-restart-data-")),
      LOG_LEVEL: "silent",
    };
    let coordinator = await startCoordinator(loadConfig(env), createLogger("silent"));
    const port = String(coordinator.port);
    const accountKey = await newAccountKey(coordinator.url);
    const node = startAgent({
      COORDINATOR_URL: coordinator.url,
      IRIS_ACCOUNT_KEY: accountKey,
      NODE_ID: "restarts",
      IRIS_MODEL: modelPath,
    });
    try {
      await node.waitForLog((line) => line.msg === "registered with the coordinator");
      await coordinator.close();
      await node.waitForLog((line) => line.msg === "connection to the coordinator lost; reconnecting");
      coordinator = await startCoordinator(loadConfig({ ...env, PORT: port }), createLogger("silent"));
      await node.waitForLog(
        (line) =>
          line.msg === "registered with the coordinator" &&
          line !== node.logs.find((l) => l.msg === "registered with the coordinator"),
      );
      expect(coordinator.registry.get("restarts")).toBeDefined();
    } finally {
      node.kill();
      await coordinator.close();
    }
  }, 90_000);
});

describe("an agent on LM Studio (stand-in speaking its wire format)", () => {
  it("serves a chat through the OpenAI-compatible backend, and a client cancel reaches LM Studio", async () => {
    const lmstudio = await startLmStudioStandin({
      tokens: Array.from({ length: 400 }, (_, i) => ` w${i}`),
      tokenDelayMs: 10,
    });
    const coordinator = await startTestCoordinator();
    try {
      const accountKey = await newAccountKey(coordinator.url);
      const node = startAgent({
        COORDINATOR_URL: coordinator.url,
        IRIS_ACCOUNT_KEY: accountKey,
        NODE_ID: "lmstudio-node",
        IRIS_BACKEND: "lmstudio",
        BACKEND_URL: lmstudio.baseUrl,
        BENCHMARK_TOKENS: "8",
      });
      try {
        await node.waitForLog((line) => line.msg === "registered with the coordinator");
        const controller = new AbortController();
        let tokens = 0;
        const err = await connectFailure(
          (async () => {
            const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
            for await (const response of inference.chat(
              { params: { messages: [question], maxTokens: 400 } },
              { signal: controller.signal },
            )) {
              if (response.event.case === "token" && ++tokens === 5) controller.abort();
            }
          })(),
        );
        expect(err.code).toBe(Code.Canceled);
        await node.waitForLog((line) => line.msg === "task ended" && line.outcome === "cancelled");
        await expect.poll(() => lmstudio.requests.filter((r) => r.disconnected).length).toBeGreaterThan(0);
      } finally {
        node.kill();
      }
    } finally {
      await coordinator.close();
      await lmstudio.close();
    }
  }, 60_000);
});
