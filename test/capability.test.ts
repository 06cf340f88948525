// Measured against declared capability over real sockets (a real coordinator, scripted nodes): a node whose answers
// come slower than its benchmark is re-tiered by what was measured, also after reconnecting; one that keeps its word
// is verified; a size left out is parsed from the model name; ListNodes tells declared from verified.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Tier } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { NetworkService, Verification } from "../gen/iris/v1/network_pb.ts";
import { startTestCoordinator, newAccountKey, type TestCoordinator } from "./support/coordinator.ts";
import { ScriptedNodes, type Script } from "./support/scripted-node.ts";

/** An answer of `tokens` one-word chunks, `delayMs` apart: 1000 / delayMs tokens per second as measured. */
const paced = (tokens: number, delayMs: number) => (): Script => ({
  tokens: Array.from({ length: tokens }, (_, i) => ` w${i}`),
  delayMs,
});

describe("measured capability", () => {
  let coordinator: TestCoordinator;
  let nodes: ScriptedNodes;
  let network: ReturnType<typeof createClient<typeof NetworkService>>;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ HEARTBEAT_INTERVAL_MS: "200" });
    const accountKey = await newAccountKey(coordinator.url);
    nodes = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey }));
    const transport = createGrpcTransport({ baseUrl: coordinator.url });
    network = createClient(NetworkService, transport);
    inference = createClient(InferenceService, transport);
  });
  afterEach(async () => {
    const started = nodes.all();
    nodes.killAll();
    await Promise.all(started.map((node) => node.ended));
    await expect.poll(() => [...coordinator.registry.nodes()].every((n) => !n.connected)).toBe(true);
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  async function ask(): Promise<string> {
    let nodeId = "";
    for await (const response of inference.chat({
      params: { messages: [{ role: 2, content: "Translate 'good night' to French." }] },
    })) {
      if (response.event.case === "accepted") nodeId = response.event.value.nodeId;
    }
    return nodeId;
  }
  const listed = async (nodeId: string) =>
    (await network.listNodes({ onlineOnly: true })).nodes.find((n) => n.nodeId === nodeId)!;

  it(
    "re-tiers a node that declares 5,000 tok/s and answers at about 20 after 5 measured answers, and keeps it there " +
      "across a reconnect",
    async () => {
      const declaration = {
        nodeId: "boaster",
        modelName: "Llama-3.1-8B-Instruct-Q4_K_M",
        parameterCount: 8e9,
        quantization: "Q4_K_M",
        tokensPerSecond: 5000,
        script: paced(17, 50),
      };
      const boaster = await nodes.start(declaration);
      expect(await boaster.registered).toMatchObject({ tier: Tier.PRO });
      expect((await listed("boaster")).verification).toMatchObject({ speed: Verification.DECLARED, speedSamples: 0 });

      for (let i = 1; i <= 4; i++) expect(await ask()).toBe("boaster");
      // four samples say nothing yet: the declared benchmark stands
      expect(coordinator.registry.get("boaster")!.tier).toBe("PRO");
      expect(await ask()).toBe("boaster");

      const info = await listed("boaster");
      expect(info.tier).toBe(Tier.MID);
      expect(info.tokensPerSecond).toBe(5000); // what it declared, still shown as such
      expect(info.verification).toMatchObject({ speed: Verification.CONTRADICTED, speedSamples: 5 });
      expect(info.verification!.measuredTokensPerSecond).toBeGreaterThan(10);
      expect(info.verification!.measuredTokensPerSecond).toBeLessThan(30);
      expect(info.tierReason).toMatch(/tok\/s \(10–30\) → MID \(measured median of 5 answers; declared 5000 tok\/s\)$/);
      // written at once, with the measurements behind it
      await expect
        .poll(
          async () =>
            (
              await coordinator.db
                .selectFrom("nodes")
                .select("tier")
                .where("id", "=", "boaster")
                .executeTakeFirstOrThrow()
            ).tier,
        )
        .toBe("MID");
      expect(
        coordinator.logs.some(
          (l) =>
            l.msg === "node re-tiered by its measured speed" &&
            l.nodeId === "boaster" &&
            l.from === "PRO" &&
            l.to === "MID",
        ),
      ).toBe(true);

      // reconnecting with the same declaration does not wipe the measurements
      nodes.killAll();
      await boaster.ended;
      await expect.poll(() => coordinator.registry.get("boaster")).toBeUndefined();
      // offline, ListNodes reads the measurements written at the session's end (batched: within a few ms)
      await expect
        .poll(async () => (await network.listNodes({})).nodes.find((n) => n.nodeId === "boaster"))
        .toMatchObject({
          online: false,
          tier: Tier.MID,
          verification: { speed: Verification.CONTRADICTED, speedSamples: 5 },
        });
      const again = await nodes.start(declaration);
      expect(await again.registered).toMatchObject({
        tier: Tier.MID,
        tierReason: expect.stringMatching(/measured median of 5 answers/),
      });
      expect((await listed("boaster")).verification).toMatchObject({
        speed: Verification.CONTRADICTED,
        speedSamples: 5,
      });
    },
  );

  it("verifies a node whose answers come as fast as it declared", async () => {
    await nodes.start({
      nodeId: "steady",
      modelName: "Mistral-7B-Instruct-v0.3-Q5_K_M",
      parameterCount: 7.2e9,
      quantization: "Q5_K_M",
      tokensPerSecond: 20,
      script: paced(17, 50),
    });
    for (let i = 0; i < 5; i++) expect(await ask()).toBe("steady");
    const info = await listed("steady");
    expect(info).toMatchObject({ tier: Tier.MID, verification: { speed: Verification.VERIFIED, speedSamples: 5 } });
    expect(info.tierReason).not.toMatch(/measured/);
  });

  it.each([
    {
      what: "a 70B name without a size: parsed, PRO",
      modelName: "Meta-Llama-3.1-70B-Instruct-Q4_K_M",
      tier: Tier.PRO,
      parameterCount: 70_000_000_000n,
      quantization: "Q4_K_M",
      size: Verification.INFERRED,
      reason: /^70B Q4_K_M counts as 70B/,
    },
    {
      what: "a name that says nothing: 0B, BASIC",
      modelName: "house-model",
      tier: Tier.BASIC,
      parameterCount: 0n,
      quantization: "",
      size: Verification.DECLARED,
      reason: /^unknown size counts as 0B/,
    },
  ])("a node that sends no size — $what", async ({ modelName, tier, parameterCount, quantization, size, reason }) => {
    const node = await nodes.start({
      nodeId: "sizeless",
      modelName,
      parameterCount: 0,
      quantization: "",
      tokensPerSecond: 24,
    });
    expect(await node.registered).toMatchObject({ tier, tierReason: expect.stringMatching(reason) });
    expect(await listed("sizeless")).toMatchObject({
      tier,
      parameterCount,
      quantization,
      verification: { size, speed: Verification.DECLARED, model: Verification.DECLARED },
    });
  });

  it("shows whether nodes serving the same name declare the same model file", async () => {
    const sha = (c: string) => c.repeat(64);
    const model = {
      modelName: "qwen2.5-7b-instruct-q4_k_m",
      parameterCount: 7.6e9,
      quantization: "Q4_K_M",
      tokensPerSecond: 20,
    };
    await nodes.start({ nodeId: "file-a", ...model, modelSha256: sha("a") });
    await nodes.start({ nodeId: "file-a2", ...model, modelSha256: sha("a") });
    await nodes.start({ nodeId: "file-b", ...model, modelSha256: sha("b") });
    expect((await listed("file-a")).verification).toMatchObject({
      model: Verification.DECLARED, // a fingerprint is declared too: it informs, it does not verify
      modelSha256: sha("a"),
      modelEvidence:
        "file fingerprint matches 1 other node; file fingerprint differs from 1 node serving the same name",
    });
    expect((await listed("file-b")).verification!.modelEvidence).toBe(
      "file fingerprint differs from 2 nodes serving the same name",
    );
  });
});
