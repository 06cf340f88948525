// Table tests of the spot checker's pure parts: which tasks are checked, canary prompts and how they are judged.
import pino from "pino";
import { describe, expect, it } from "vitest";
import { NodeRegistry } from "../nodes/registry.ts";
import type { MismatchRecorder } from "./division/mismatch.ts";
import type { PartRunner } from "./part-runner.ts";
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
