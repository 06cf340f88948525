// The throughput meter on a fake clock: the window, partial seconds, expiry and the ring's reuse of buckets.
import { describe, expect, it } from "vitest";
import { ThroughputMeter } from "./throughput.ts";

function meterAt(startMs: number) {
  const clock = { ms: startMs };
  return { clock, meter: new ThroughputMeter(() => clock.ms) };
}

describe("ThroughputMeter", () => {
  it("reports 0 before any token", () => {
    expect(meterAt(1_000_000).meter.rate()).toBe(0);
  });

  it("reads a steady rate back once the window is full", () => {
    const { clock, meter } = meterAt(1_000_000);
    for (let ms = 0; ms < 20_000; ms += 100) {
      clock.ms = 1_000_000 + ms;
      meter.record(5); // 50 tokens a second
    }
    clock.ms = 1_020_000; // just into a new second: 9 full seconds of the window are filled
    expect(meter.rate()).toBeCloseTo(50, 6);
  });

  it("divides by the time the buckets cover, the current second counting only as far as it has gone", () => {
    const { clock, meter } = meterAt(2_000_500);
    meter.record(95);
    expect(meter.rate()).toBeCloseTo(95 / 9.5, 9);
    clock.ms = 2_000_999;
    expect(meter.rate()).toBeCloseTo(95 / 9.999, 9);
  });

  it("forgets tokens older than the window", () => {
    const { clock, meter } = meterAt(3_000_000);
    meter.record(10);
    clock.ms = 3_009_999;
    expect(meter.rate()).toBeGreaterThan(0);
    clock.ms = 3_010_000;
    expect(meter.rate()).toBe(0);
  });

  it("starts a bucket afresh when the ring comes round to it again", () => {
    const { clock, meter } = meterAt(4_003_000);
    meter.record(1000);
    clock.ms = 4_013_000; // same slot, ten seconds later
    meter.record(7);
    expect(meter.rate()).toBeCloseTo(7 / 9, 9);
  });

  it("counts one token per call by default, and takes other window sizes", () => {
    const clock = { ms: 5_000_000 };
    const meter = new ThroughputMeter(() => clock.ms, 2);
    meter.record();
    meter.record();
    clock.ms = 5_001_000;
    meter.record();
    expect(meter.rate()).toBeCloseTo(3, 9); // 3 tokens over 1 s (one full second + 0 ms of this one)
    expect(() => new ThroughputMeter(Date.now, 0)).toThrow(RangeError);
  });
});
