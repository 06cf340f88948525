// Canaries over real sockets, many and fast (CANARY_INTERVAL_MS=20): an honest node on a tiny model is never judged
// (speed only), two of them on two accounts are compared with each other and verified, and a node claiming a 405B
// model it does not run fails the known answer and is suspended. ListTasks marks every one as a canary.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetworkService, TaskPurpose, Verification } from "../gen/iris/v1/network_pb.ts";
import type { TaskAssign, TaskPayload } from "../gen/iris/v1/node_pb.ts";
import { startTestCoordinator, newAccountKey, type TestCoordinator } from "./support/coordinator.ts";
import { ScriptedNodes, type Script } from "./support/scripted-node.ts";

const TINY = {
  modelName: "Iris Tiny Test Model",
  parameterCount: 113_000,
  quantization: "F32",
  tokensPerSecond: 300,
  modelSha256: "5".repeat(64),
};
const WORDS = ["the", "of", "iris", "node", "token", "model", "hot", "word"];

/**
 * A tiny random-weight model: 20 words that have nothing to do with the question (it cannot repeat a code), the
 * same for the same prompt and seed at temperature 0, as llama.cpp's sampling is.
 */
function tinyModel(_: TaskAssign, payload: TaskPayload): Script {
  const basis = `${payload.messages.at(-1)?.content}|${payload.temperature === 0 ? payload.seed : Math.random()}`;
  let h = 0;
  for (const ch of basis) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return { tokens: Array.from({ length: 20 }, (_, i) => ` ${WORDS[(h >>> (i % 24)) % 8]}`), delayMs: 1 };
}

describe("canaries judge honesty, not skill", () => {
  let coordinator: TestCoordinator;
  let alice: ScriptedNodes;
  let bob: ScriptedNodes;
  let network: ReturnType<typeof createClient<typeof NetworkService>>;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ HEARTBEAT_INTERVAL_MS: "200", CANARY_INTERVAL_MS: "20" });
    const [aliceKey, bobKey] = [await newAccountKey(coordinator.url), await newAccountKey(coordinator.url)];
    alice = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey: aliceKey }));
    bob = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey: bobKey }));
    network = createClient(NetworkService, createGrpcTransport({ baseUrl: coordinator.url }));
  });
  afterAll(async () => {
    alice?.killAll();
    bob?.killAll();
    await coordinator?.close();
  });

  const judged = async (nodeId: string) => {
    await coordinator.journal.flush();
    await coordinator.reputation.settled();
    return coordinator.db
      .selectFrom("reputation_events")
      .select(["rule", "delta", "evidence"])
      .where("node_id", "=", nodeId)
      .where("rule", "=", "invalid_response")
      .orderBy("id")
      .execute();
  };
  const row = (nodeId: string) =>
    coordinator.db
      .selectFrom("nodes")
      .select(["mismatches", "suspended_at"])
      .where("id", "=", nodeId)
      .executeTakeFirstOrThrow();
  const listed = async (nodeId: string) => (await network.listNodes({})).nodes.find((n) => n.nodeId === nodeId)!;

  it(
    "never judges an honest tiny-model node alone, over 150 canaries (25 hours at the default 10 minutes); it " +
      "measures its speed",
    async () => {
      const tiny = await alice.start({ nodeId: "tiny-a", ...TINY, script: tinyModel });
      await expect.poll(() => tiny.assigns.length, { timeout: 60_000, interval: 200 }).toBeGreaterThanOrEqual(150);
      expect(await judged("tiny-a")).toEqual([]);
      expect(await row("tiny-a")).toEqual({ mismatches: 0, suspended_at: null });
      expect(coordinator.registry.get("tiny-a")!.suspended).toBe(false);
      // what it was asked: paragraphs to measure, not tests to fail
      expect(
        tiny.payloads.every((p) => p.messages[0]!.content.startsWith("Write a short paragraph about the number")),
      ).toBe(true);
      const info = await listed("tiny-a");
      expect(info.verification).toMatchObject({ speed: Verification.VERIFIED, model: Verification.DECLARED });
      expect(info.verification!.speedSamples).toBe(10);

      const tasks = (await network.listTasks({ nodeId: "tiny-a", limit: 100 })).tasks;
      expect(tasks).toHaveLength(100);
      expect(new Set(tasks.map((t) => t.purpose))).toEqual(new Set([TaskPurpose.CANARY]));
    },
  );

  it(
    "compares two honest tiny-model nodes of two accounts with each other: identical answers, both verified, nobody " +
      "judged",
    async () => {
      await bob.start({ nodeId: "tiny-b", ...TINY, script: tinyModel });
      await expect
        .poll(
          async () => [(await listed("tiny-a")).verification!.model, (await listed("tiny-b")).verification!.model],
          {
            timeout: 20_000,
            interval: 200,
          },
        )
        .toEqual([Verification.VERIFIED, Verification.VERIFIED]);
      expect((await listed("tiny-b")).verification!.modelEvidence).toBe(
        "answered like node tiny-a on a canary; file fingerprint matches 1 other node",
      );
      expect([...(await judged("tiny-a")), ...(await judged("tiny-b"))]).toEqual([]);
      // the peer's run is a canary row too, under the target's
      const pairs = (await network.listTasks({ limit: 200 })).tasks.filter((t) => t.parentTaskId !== "");
      expect(pairs.length).toBeGreaterThan(0);
      for (const task of pairs) expect(task.purpose).toBe(TaskPurpose.CANARY);
    },
  );

  it(
    "suspends a node that claims Llama 405B F16 and answers like a tiny model: three failed known " + "answers",
    async () => {
      await bob.start({
        nodeId: "liar-405b",
        modelName: "Meta-Llama-3.1-405B-Instruct-F16",
        parameterCount: 405e9,
        quantization: "F16",
        tokensPerSecond: 5000,
        script: tinyModel,
      });
      await expect
        .poll(() => coordinator.registry.get("liar-405b")?.suspended, { timeout: 30_000, interval: 200 })
        .toBe(true);
      const penalties = await judged("liar-405b");
      // (one more canary may have been on its way while the third mismatch was being counted)
      expect(penalties.length).toBeGreaterThanOrEqual(3);
      for (const penalty of penalties)
        expect(penalty.evidence).toMatchObject({ check: "canary", referenceFrom: "known answer" });
      expect(penalties.slice(0, 3).map((p) => p.delta)).toEqual([-50, -40, 0]); // −50 each, never below 10
      expect((await row("liar-405b")).mismatches).toBeGreaterThanOrEqual(3);
      // the honest tiny nodes beside it, still untouched
      expect([...(await judged("tiny-a")), ...(await judged("tiny-b"))]).toEqual([]);
    },
  );
});
