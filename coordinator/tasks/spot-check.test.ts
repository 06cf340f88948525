// Table tests of the spot checker's pure parts: which tasks are checked, canary prompts and how they are judged; and
// what a check that finds no other node of the model logs.
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import { liveNode } from "../../test/support/live-nodes.ts";
import { type LiveNode, NodeRegistry } from "../nodes/registry.ts";
import type { MismatchRecorder } from "./division/mismatch.ts";
import type { PartRunner } from "./part-runner.ts";
import type { PartResult, PartSpec } from "./part-spec.ts";
import { canaryPrompt, passesCanary, SpotChecker } from "./spot-check.ts";

function checker(fraction: number, draws: number[]) {
  let i = 0;
  return new SpotChecker({
    parts: {} as PartRunner,
    registry: new NodeRegistry(),
    logger: pino({ level: "silent" }),
    mismatches: {} as MismatchRecorder,
    config: { spotCheckFraction: fraction, consensusSimilarity: 0.9, canaryIntervalMs: 0, spotCheckMaxWaitMs: 0 },
    random: () => draws[i++ % draws.length]!,
  });
}

describe("SpotChecker.select", () => {
  it.each([
    { fraction: 0.05, draw: 0.04, temperature: undefined, checked: true },
    { fraction: 0.05, draw: 0.05, temperature: undefined, checked: false },
    { fraction: 0.05, draw: 0.01, temperature: 0, checked: true },
    { fraction: 0.05, draw: 0.01, temperature: 0.7, checked: false }, // sampled answers cannot be compared
    { fraction: 0, draw: 0, temperature: undefined, checked: false },
    { fraction: 1, draw: 0.99, temperature: undefined, checked: true },
  ])(
    "fraction $fraction, draw $draw, temperature $temperature → $checked",
    ({ fraction, draw, temperature, checked }) => {
      const selected = checker(fraction, [draw]).select(temperature);
      expect(selected !== undefined).toBe(checked);
      if (selected) expect(Number.isInteger(selected.seed) && selected.seed >= 0).toBe(true);
    },
  );
});

describe("canaries", () => {
  it("asks to repeat a random code of three groups", () => {
    const { prompt, answer } = canaryPrompt(() => 0.5);
    expect(answer).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
    expect(prompt).toBe(`Reply with exactly this code and nothing else: ${answer}`);
    let seed = 3;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    expect(canaryPrompt(random).answer).not.toBe(canaryPrompt(random).answer);
  });

  it.each([
    { output: "QX7M-4KPA-ZZ29", passes: true },
    { output: "qx7m-4kpa-zz29.", passes: true },
    { output: "Sure! Here it is: QX7M-4KPA-ZZ29", passes: true },
    { output: "DK2Z-9XCN-MM74", passes: false }, // altered
    { output: "QX7M-4KPA-ZZ2", passes: false },
    { output: "XQX7M-4KPA-ZZ29", passes: false },
    { output: "", passes: false },
  ])("$output → $passes", ({ output, passes }) => {
    expect(passesCanary(output, "QX7M-4KPA-ZZ29")).toBe(passes);
  });
});

describe("a spot check with no other node of the model", () => {
  /** A node serving the same model file as every other one made here. */
  const sameModel = (id: string, model = "llama-8b") => {
    const node = liveNode(id, `account-${id}`, "PRO", 100, 0);
    node.capabilities.modelName = model;
    return node;
  };
  const answer = (node: LiveNode, text: string): PartResult => ({
    taskId: `task-${node.id}`,
    text,
    pieces: [text],
    promptTokens: 3,
    completionTokens: 2,
    finishReason: "stop",
    node,
    nodeIds: [node.id],
    firstTokenAt: 1,
    completedAt: 2,
    judge() {},
  });
  const spec = { taskId: "checked", difficulty: "SIMPLE", classifier: "local", messages: [] } as unknown as PartSpec;

  it("says so once at info, then at debug until a check runs, and again after that", async () => {
    const lines: { level: number; msg: string; model: string; skipped?: number; skippedInARow?: number }[] = [];
    const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const registry = new NodeRegistry();
    const first = sameModel("first");
    registry.add(first);
    // the checker's run: the same answer again, from the node it was sent to (the only node the spec allows)
    const parts = {
      record() {},
      // biome-ignore lint/correctness/useYield: the check's part yields no event here, only its result
      async *run(part: PartSpec) {
        const node = registry.get(part.only!)!;
        return answer(node, "four");
      },
    } as unknown as PartRunner;
    const checker = new SpotChecker({
      parts,
      registry,
      logger,
      mismatches: {} as MismatchRecorder,
      config: { spotCheckFraction: 1, consensusSimilarity: 0.9, canaryIntervalMs: 0, spotCheckMaxWaitMs: 0 },
    });
    const said = (level: "info" | "debug", msg: RegExp) =>
      lines.filter((line) => line.level === pino.levels.values[level] && msg.test(line.msg));
    const check = async (count: number, node = first) => {
      const before = lines.length;
      for (let i = 0; i < count; i++) checker.check({ spec, result: answer(node, "four") });
      await vi.waitFor(() => expect(lines.length).toBe(before + count));
    };

    await check(3);
    expect(said("info", /^spot check skipped/)).toHaveLength(1);
    expect(said("debug", /^spot check skipped$/).map((line) => line.skippedInARow)).toEqual([2, 3]);
    // another model's first skip is news of its own
    const other = sameModel("other", "qwen-7b");
    registry.add(other);
    await check(1, other);
    expect(said("info", /^spot check skipped/).map((line) => line.model)).toEqual(["llama-8b", "qwen-7b"]);

    registry.add(sameModel("second"));
    await check(1);
    expect(said("info", /^spot checks running again$/).map((line) => line.skipped)).toEqual([3]);
    await vi.waitFor(() => expect(said("debug", /^spot check passed$/)).toHaveLength(1));

    registry.remove(registry.get("second")!, "test");
    await check(1);
    expect(said("info", /^spot check skipped/).map((line) => line.model)).toEqual(["llama-8b", "qwen-7b", "llama-8b"]);
    checker.close();
  });
});
