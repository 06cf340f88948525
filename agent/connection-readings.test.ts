// The agent's link to a real coordinator: heartbeats carry the latest GPU readings (VRAM used, utilisation), so the
// coordinator's node list and dashboard show live values instead of those of the registration (the readings come
// from the agent's state, filled by the nvidia-smi/rocm-smi probes whose parsing agent/gpu.test.ts covers); and the
// heartbeat acks bring back the account's earnings so far this month, which the terminal UI shows.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateKeyFile } from "../common/crypto/key-file.ts";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { NetworkService } from "../gen/iris/v1/network_pb.ts";
import { writeTinyGguf } from "../test/fixtures/tiny-gguf.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "../test/support/coordinator.ts";
import { createLlamaBackend } from "./backends/llama.ts";
import type { Backend } from "./backends/backend.ts";
import { CoordinatorLink } from "./connection.ts";
import type { Gpu } from "./gpu.ts";
import { AgentState } from "./state.ts";

const gpu = (vramUsedMb: number, utilizationPercent: number): Gpu => ({
  name: "Test RTX 4090",
  vendor: "nvidia",
  vramTotalMb: 24_564,
  vramUsedMb,
  utilizationPercent,
});

describe("heartbeats and their acks", () => {
  let coordinator: TestCoordinator;
  let backend: Backend;
  const stop = new AbortController();

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "iris-readings-"));
    writeTinyGguf(join(dir, "tiny.gguf"));
    backend = await createLlamaBackend({ modelPath: join(dir, "tiny.gguf"), threads: 1 });
    coordinator = await startTestCoordinator({
      HEARTBEAT_INTERVAL_MS: "100",
      EARNINGS_ESTIMATE_MS: "100",
      MONTHLY_POOL_UNITS: "1000000",
    });
  });
  afterAll(async () => {
    stop.abort();
    await backend?.close();
    await coordinator?.close();
  });

  it("replaces the registration's readings with each heartbeat's, visible in ListNodes", async () => {
    const accountKey = await newAccountKey(coordinator.url);
    const state = new AgentState({
      version: "test",
      nodeId: "gpu-node",
      accountKey,
      coordinatorUrl: coordinator.url,
      backend: "embedded",
      maxConcurrentTasks: 1,
    });
    state.setReadings([gpu(1_000, 5)]);
    const key = await loadOrCreateKeyFile(join(mkdtempSync(join(tmpdir(), "iris-readings-key-")), "node.key"));
    const link = new CoordinatorLink({
      coordinatorUrl: coordinator.url,
      identity: {
        nodeId: "gpu-node",
        accountKey: accountKey.replaceAll(" ", ""),
        modelName: "Iris Tiny Test Model",
        parameterCount: 113_472,
        quantization: "F32",
        contextLength: 2048,
        tokensPerSecond: 100,
        maxConcurrentTasks: 1,
        gpus: [gpu(1_000, 5)],
        backend: "embedded",
        agentVersion: "test",
        promisedHoursUtc: [],
        key,
      },
      backend,
      logger: pino({ level: "silent" }),
      signal: stop.signal,
      state,
    });
    void link.run();
    await expect.poll(() => coordinator.registry.get("gpu-node")?.capabilities.gpus[0]?.vramUsedMb).toBe(1_000);
    // a task loads the model onto the card: the next reading goes out with the next heartbeat
    state.setReadings([gpu(17_890.4, 97.6)]);
    await expect
      .poll(() => coordinator.registry.get("gpu-node")?.capabilities.gpus[0])
      .toEqual({ name: "Test RTX 4090", vramTotalMb: 24_564, vramUsedMb: 17_890, utilizationPercent: 98 });
    const { nodes } = await createClient(NetworkService, createGrpcTransport({ baseUrl: coordinator.url })).listNodes({
      onlineOnly: true,
    });
    expect(nodes.find((n) => n.nodeId === "gpu-node")?.gpus[0]).toMatchObject({
      vramUsedMb: 17_890n,
      utilizationPercent: 98,
    });

    // earnings: nothing served yet, so nothing earned; after an answer, the only contributing account would get
    // the whole pool if the month ended now
    await expect.poll(() => state.snapshot.earnings).toEqual({ month: new Date().toISOString().slice(0, 7), units: 0 });
    const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    for await (const _ of inference.chat({
      params: { messages: [{ role: Role.USER, content: "Say hello." }], maxTokens: 8 },
    }));
    await expect.poll(() => state.snapshot.earnings?.units, { timeout: 5_000 }).toBe(1_000_000);
  });
});
