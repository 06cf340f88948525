// Training: the committed model file is exactly what the corpus trains to (same data, same bytes), and the
// cost-aware offsets keep the calibration split's under-classification within the target.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MODEL_FILE } from "./model.ts";
import { chooseOffsets, trainFromCorpus, TRAINING } from "./train.ts";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("trainFromCorpus", () => {
  it("retrains the committed model file byte for byte (run npm run train:classifier after changing the corpus)", () => {
    const run = trainFromCorpus();
    expect(sha256(run.bytes)).toBe(sha256(readFileSync(MODEL_FILE)));
    // the offsets were chosen within the target on the calibration split
    expect(run.calibration.withOffsets.under).toBeLessThanOrEqual(TRAINING.underTarget);
    expect(run.calibration.withOffsets.accuracy).toBeGreaterThan(0.85);
  }, 180_000);
});

describe("chooseOffsets", () => {
  it("raises a class the scores under-call until the share sent too low is within the target", () => {
    // ten ADVANCED requests the model scores a little below COMPLEX, ninety plain SIMPLE ones
    const scores = [
      ...Array.from({ length: 10 }, () => Float64Array.from([0, 1, 0.6])),
      ...Array.from({ length: 90 }, () => Float64Array.from([2, 0, -1])),
    ];
    const labels = [...Array.from({ length: 10 }, () => 2), ...Array.from({ length: 90 }, () => 0)];
    const offsets = chooseOffsets(scores, labels);
    expect(offsets[0]).toBe(0);
    expect(offsets[2]! - offsets[1]!).toBeGreaterThan(0.4); // ADVANCED now beats COMPLEX on them
    expect(2 + offsets[0]!).toBeGreaterThan(Math.max(offsets[1]!, -1 + offsets[2]!)); // SIMPLE ones stay SIMPLE
  });
});
