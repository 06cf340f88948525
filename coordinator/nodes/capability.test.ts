// Table tests of declared against measured capability: speed samples and verdicts, the tier they give, sizes parsed
// from names, context refusals, model identity; and the measurements' snapshot surviving a reconnect.
import { describe, expect, it } from "vitest";
import {
  contextVerdict,
  measuredTier,
  modelVerdict,
  sizeOf,
  speedSample,
  speedVerdict,
  type AnswerTiming,
} from "./capability.ts";
import { measurementKey, NodeMeasurements } from "./measurements.ts";

const timing = (over: Partial<AnswerTiming>): AnswerTiming => ({
  completionTokens: 33,
  answerBytes: 150,
  chunks: 33,
  generationMs: 1000,
  responseMs: 1200,
  solo: true,
  ...over,
});

describe("speedSample", () => {
  it.each([
    { what: "streamed: tokens after the first over the time after the first chunk", over: {}, sample: 32 },
    { what: "sent whole (one chunk): tokens over the response time", over: { chunks: 1 }, sample: 27.5 },
    { what: "sent whole (no chunk)", over: { chunks: 0, generationMs: 0 }, sample: 27.5 },
    {
      what: "an inflated token count is capped by the bytes sent",
      over: { completionTokens: 10_000, answerBytes: 33 },
      sample: 32,
    },
    { what: "shorter than 16 tokens: no sample", over: { completionTokens: 15 }, sample: undefined },
    { what: "16 bytes hold at most 16 tokens", over: { completionTokens: 40, answerBytes: 15 }, sample: undefined },
    { what: "shared with other tasks: no sample", over: { solo: false }, sample: undefined },
  ])("$what", ({ over, sample }) => {
    expect(speedSample(timing(over))).toBe(sample);
  });
});

describe("speedVerdict", () => {
  it.each([
    {
      declared: 5000,
      samples: [20, 21, 19, 22],
      verdict: { verification: "declared", measured: 20.5, samples: 4, tierSpeed: 5000 },
    },
    {
      declared: 5000,
      samples: [20, 21, 19, 22, 18],
      verdict: { verification: "contradicted", measured: 20, samples: 5, tierSpeed: 20 },
    },
    {
      declared: 40,
      samples: [20, 21, 19, 22, 18],
      verdict: { verification: "verified", measured: 20, samples: 5, tierSpeed: 40 },
    }, // ≥ half
    {
      declared: 41,
      samples: [20, 21, 19, 22, 18],
      verdict: { verification: "contradicted", measured: 20, samples: 5, tierSpeed: 20 },
    },
    {
      declared: 20,
      samples: [90, 95, 99, 80, 85],
      verdict: { verification: "verified", measured: 90, samples: 5, tierSpeed: 20 },
    }, // faster is no promotion
    {
      declared: 0,
      samples: [35, 36, 34, 33, 37],
      verdict: { verification: "inferred", measured: 35, samples: 5, tierSpeed: 35 },
    }, // none declared
    // only the latest 10 count: a node that got faster is restored once they outnumber the old ones
    {
      declared: 40,
      samples: [5, 5, 5, 5, 5, 39, 39, 39, 39, 39, 39],
      verdict: { verification: "verified", measured: 39, samples: 10, tierSpeed: 40 },
    },
  ] as const)("declared $declared, samples $samples → $verdict.verification", ({ declared, samples, verdict }) => {
    expect(speedVerdict(declared, samples)).toEqual(verdict);
  });
});

describe("measuredTier", () => {
  it.each([
    // a liar declaring 8B at 5,000 tok/s is PRO on paper and MID on its measured 20 tok/s
    {
      declared: 5000,
      samples: [20, 20, 20, 20, 20],
      tier: "MID",
      reason: /20 tok\/s.*measured median of 5 answers; declared 5000 tok\/s/,
    },
    { declared: 5000, samples: [4, 4, 4, 4, 4], tier: "BASIC", reason: /4 tok\/s \(< 10\)/ },
    { declared: 5000, samples: [], tier: "PRO", reason: /5000 tok\/s \(> 30\) → PRO$/ },
    { declared: 0, samples: [12, 12, 12, 12, 12], tier: "MID", reason: /none declared/ },
  ])("8B Q4_K_M declared $declared tok/s, measured $samples → $tier", ({ declared, samples, tier, reason }) => {
    const decision = measuredTier(
      { parameterCount: 8e9, quantization: "Q4_K_M" },
      declared,
      speedVerdict(declared, samples),
    );
    expect(decision.tier).toBe(tier);
    expect(decision.reason).toMatch(reason);
  });
});

describe("sizeOf: the coordinator parses the model name when a node sends no size", () => {
  it.each([
    {
      name: "Meta-Llama-3.1-70B-Instruct-Q4_K_M",
      parameterCount: 0,
      quantization: "",
      expected: { parameterCount: 70e9, quantization: "Q4_K_M", size: "inferred" },
    },
    {
      name: "qwen2.5:7b-instruct-q8_0",
      parameterCount: 0,
      quantization: "Q8_0",
      expected: { parameterCount: 7e9, quantization: "Q8_0", size: "inferred" },
    },
    {
      name: "mistral-7b-instruct",
      parameterCount: 7.2e9,
      quantization: "",
      expected: { parameterCount: 7.2e9, quantization: "", size: "declared" },
    }, // nothing to parse
    {
      name: "Llama-3.1-8B-Q4_K_M",
      parameterCount: 70e9,
      quantization: "Q8_0",
      expected: { parameterCount: 70e9, quantization: "Q8_0", size: "declared" },
    }, // declared wins
    {
      name: "my-own-model",
      parameterCount: 0,
      quantization: "",
      expected: { parameterCount: 0, quantization: "", size: "declared" },
    }, // unknown stays 0
  ] as const)("$name with $parameterCount / '$quantization'", ({ name, parameterCount, quantization, expected }) => {
    expect(sizeOf({ modelName: name, parameterCount, quantization })).toEqual(expected);
  });
});

describe("contextVerdict", () => {
  it.each([
    { declared: 32768, proven: 2000, refusedAt: undefined, verdict: { verification: "declared", effective: 32768 } },
    // refused well below
    { declared: 32768, proven: 2000, refusedAt: 9000, verdict: { verification: "contradicted", effective: 9000 } },
    // could be the template and the answer's room
    { declared: 32768, proven: 2000, refusedAt: 20000, verdict: { verification: "declared", effective: 32768 } },
    { declared: 4096, proven: 4096, refusedAt: undefined, verdict: { verification: "verified", effective: 4096 } },
    // nothing declared, nothing to contradict
    { declared: 0, proven: 900, refusedAt: 100, verdict: { verification: "declared", effective: 0 } },
  ])(
    "declared $declared, proven $proven, refused at $refusedAt → $verdict.verification",
    ({ declared, proven, refusedAt, verdict }) => {
      expect(contextVerdict(declared, proven, refusedAt)).toEqual(verdict);
    },
  );
});

describe("modelVerdict", () => {
  it.each([
    {
      identity: undefined,
      fingerprints: { same: 0, different: 0 },
      verification: "declared",
      evidence: "nothing to compare with yet",
    },
    {
      identity: undefined,
      fingerprints: { same: 2, different: 1 },
      verification: "declared",
      evidence: "file fingerprint matches 2 other nodes; file fingerprint differs from 1 node serving the same name",
    },
    {
      identity: { verdict: "verified", peer: "gpu-7", at: 1 },
      fingerprints: { same: 1, different: 0 },
      verification: "verified",
      evidence: "answered like node gpu-7 on a canary; file fingerprint matches 1 other node",
    },
    {
      identity: { verdict: "contradicted", peer: "gpu-7", at: 1 },
      fingerprints: { same: 0, different: 0 },
      verification: "contradicted",
      evidence: "answered unlike node gpu-7 on a canary",
    },
  ] as const)("$verification: $evidence", ({ identity, fingerprints, verification, evidence }) => {
    expect(modelVerdict(identity, fingerprints)).toEqual({ verification, evidence });
  });
});

describe("NodeMeasurements", () => {
  const key = measurementKey({ modelName: "Llama-3.1-8B", quantization: "Q4_K_M" });

  it(
    "keeps the latest 10 samples and the largest proven context; a snapshot restores them for the same model " + "only",
    () => {
      const measured = new NodeMeasurements(key);
      for (let i = 1; i <= 12; i++) expect(measured.answered(i, i * 100)).toBe(true);
      // no sample; a smaller context proves nothing new: nothing changed, so nothing needs to look again
      expect(measured.answered(undefined, 50)).toBe(false);
      expect(measured.answered(undefined, 1300)).toBe(true); // a larger context is news
      expect(measured.answered(Number.NaN, 1300)).toBe(false);
      measured.refused(9000);
      measured.refused(12000); // a larger refusal says less
      expect(measured.speedSamples).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      expect(measured.takeUnsaved()).toBe(true);
      expect(measured.takeUnsaved()).toBe(false);
      const stored = JSON.parse(JSON.stringify(measured.snapshot()));
      const again = new NodeMeasurements(key, stored);
      expect(again.snapshot()).toEqual({
        model: key,
        speed: [3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        provenContext: 1300,
        refusedContext: 9000,
      });
      expect(
        new NodeMeasurements(measurementKey({ modelName: "Llama-3.1-8B", quantization: "Q8_0" }), stored).speedSamples,
      ).toEqual([]);
      expect(new NodeMeasurements(key, { not: "a snapshot" }).speedSamples).toEqual([]);
    },
  );
});
