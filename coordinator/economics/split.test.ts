// The largest-remainder split: worked tables, then properties over many seeded random inputs.
import { seededRandom } from "../../common/seeded-random.ts";
import { describe, expect, it } from "vitest";
import { splitPool, type Contribution } from "./split.ts";

const amounts = (pool: number, contributions: Contribution[]) =>
  Object.fromEntries(splitPool(pool, contributions).map((s) => [s.accountId, s.amount]));
const of = (values: Record<string, number | undefined>): Contribution[] =>
  Object.entries(values).map(([accountId, contribution]) => ({ accountId, contribution: contribution! }));

// a deterministic generator, so a failing case can be replayed from its seed
const rng = seededRandom;

describe("splitPool", () => {
  it.each([
    { name: "exact proportions", pool: 600, input: { a: 1, b: 2, c: 3 }, expected: { a: 100, b: 200, c: 300 } },
    {
      name: "one left-over unit goes to the smallest id among equal remainders",
      pool: 10,
      input: { c: 1, b: 1, a: 1 },
      expected: { a: 4, b: 3, c: 3 },
    },
    {
      name: "the largest remainder wins over id order",
      pool: 10,
      input: { a: 1, b: 1, c: 1.3 },
      expected: { a: 3, b: 3, c: 4 },
    },
    {
      name: "decimal fractions that are not exact doubles",
      pool: 100,
      input: { a: 0.5, b: 0.3, c: 0.2 },
      expected: { a: 50, b: 30, c: 20 },
    },
    {
      name: "a single account takes the whole pool",
      pool: 1_000_000,
      input: { only: 0.001 },
      expected: { only: 1_000_000 },
    },
    {
      name: "a zero pool pays zero to everyone who contributed",
      pool: 0,
      input: { a: 5, b: 7 },
      expected: { a: 0, b: 0 },
    },
    { name: "zero contributions get no row", pool: 9, input: { a: 0, b: 3, c: 0 }, expected: { b: 9 } },
    { name: "no contribution at all pays nothing", pool: 9, input: { a: 0 }, expected: {} },
    {
      name: "more accounts than units",
      pool: 2,
      input: { a: 1, b: 1, c: 1, d: 1 },
      expected: { a: 1, b: 1, c: 0, d: 0 },
    },
    {
      name: "magnitudes 600 orders apart",
      pool: 10,
      input: { big: 1e300, tiny: 5e-324 },
      expected: { big: 10, tiny: 0 },
    },
  ])("$name", ({ pool, input, expected }) => {
    expect(amounts(pool, of(input))).toEqual(expected);
  });

  it("is exact for a pool near 2^53 (checked against BigInt quotas)", () => {
    const pool = Number.MAX_SAFE_INTEGER; // 2^53 - 1
    const result = splitPool(pool, of({ a: 1, b: 2, c: 4 }));
    const total = BigInt(pool);
    const floors = [1n, 2n, 4n].map((w) => (total * w) / 7n);
    // 2^53 - 1 = 7 × 1286742750677284 + 3; remainders 3/7, 6/7, 12/7 → 3/7, 6/7, 5/7: b and c get the 2 left over
    expect(result.map((s) => BigInt(s.amount))).toEqual([floors[0]!, floors[1]! + 1n, floors[2]! + 1n]);
    expect(result.reduce((sum, s) => sum + BigInt(s.amount), 0n)).toBe(total);
  });

  it("gives the left-over units of many tiny equal contributions to the smallest ids", () => {
    const accounts = Array.from({ length: 5000 }, (_, i) => ({
      accountId: `acct-${String(i).padStart(5, "0")}`,
      contribution: 5e-324,
    }));
    const result = splitPool(7, accounts.reverse());
    expect(result.filter((s) => s.amount > 0).map((s) => s.accountId)).toEqual(
      ["00000", "00001", "00002", "00003", "00004", "00005", "00006"].map((n) => `acct-${n}`),
    );
    expect(result.reduce((sum, s) => sum + s.amount, 0)).toBe(7);
  });

  it("orders by account id and reports each share of the total contribution", () => {
    const result = splitPool(1000, of({ z: 3, m: 1 }));
    expect(result.map((s) => s.accountId)).toEqual(["m", "z"]);
    expect(result.map((s) => s.share)).toEqual([0.25, 0.75]);
    expect(result.map((s) => s.contribution)).toEqual([1, 3]);
  });

  it.each([
    { name: "a negative pool", pool: -1, input: { a: 1 } },
    { name: "a fractional pool", pool: 1.5, input: { a: 1 } },
    { name: "a pool beyond 2^53", pool: 2 ** 53, input: { a: 1 } },
    { name: "a negative contribution", pool: 1, input: { a: -1 } },
    { name: "a NaN contribution", pool: 1, input: { a: Number.NaN } },
    { name: "an infinite contribution", pool: 1, input: { a: Number.POSITIVE_INFINITY } },
  ])("rejects $name", ({ pool, input }) => {
    expect(() => splitPool(pool, of(input))).toThrow(RangeError);
  });

  it("rejects an account listed twice", () => {
    expect(() =>
      splitPool(1, [
        { accountId: "a", contribution: 1 },
        { accountId: "a", contribution: 2 },
      ]),
    ).toThrow(/twice/);
  });

  describe("properties over 500 random inputs", () => {
    const cases = Array.from({ length: 500 }, (_, seed) => {
      const random = rng(seed + 1);
      const count = 1 + Math.floor(random() * 40);
      // pools from 0 to ~2^53, contributions from ~1e-6 to ~1e9 with some zeros
      const pool = Math.floor(random() ** 4 * Number.MAX_SAFE_INTEGER * (random() < 0.5 ? 1e-9 : 1));
      const contributions = Array.from({ length: count }, (_, i) => ({
        accountId: `acct-${seed}-${i}`,
        contribution: random() < 0.1 ? 0 : 10 ** (random() * 15 - 6),
      }));
      return { seed, pool, contributions };
    });

    it("pays out exactly the pool whenever someone contributed", () => {
      for (const { seed, pool, contributions } of cases) {
        const paid = splitPool(pool, contributions);
        const expected = paid.length > 0 ? pool : 0;
        expect(
          paid.reduce((sum, s) => sum + BigInt(s.amount), 0n),
          `seed ${seed}`,
        ).toBe(BigInt(expected));
      }
    });

    it("keeps every amount within one unit of its proportional quota", () => {
      for (const { seed, pool, contributions } of cases) {
        const total = contributions.reduce((sum, c) => sum + c.contribution, 0);
        for (const s of splitPool(pool, contributions)) {
          const quota = (pool * s.contribution) / total;
          // the float quota itself is off by a few ulps for huge pools; the split's exact one is not
          expect(Math.abs(s.amount - quota), `seed ${seed} ${s.accountId}`).toBeLessThan(1 + quota * 1e-12);
        }
      }
    });

    it("does not depend on the input order", () => {
      for (const { seed, pool, contributions } of cases.slice(0, 100)) {
        expect(splitPool(pool, [...contributions].reverse()), `seed ${seed}`).toEqual(splitPool(pool, contributions));
      }
    });

    it("pays more (or equal) to a larger contribution", () => {
      for (const { seed, pool, contributions } of cases) {
        const paid = splitPool(pool, contributions).sort((a, b) => a.contribution - b.contribution);
        for (let i = 1; i < paid.length; i++) {
          expect(paid[i]!.amount, `seed ${seed}`).toBeGreaterThanOrEqual(
            paid[i - 1]!.amount - (paid[i]!.contribution === paid[i - 1]!.contribution ? 1 : 0),
          );
        }
      }
    });
  });
});
