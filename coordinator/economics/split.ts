// Splits a pool of integer units in proportion to contributions (largest remainder), exactly: no unit made or lost.

export interface Contribution {
  accountId: string;
  /** Reputation-weighted tokens; any finite number >= 0. */
  contribution: number;
}

export interface Share extends Contribution {
  /** Units paid: floor(pool × contribution / total), plus one for the largest remainders. */
  amount: number;
  /** contribution / total, in (0, 1]. */
  share: number;
}

/**
 * The pool split across the accounts with a positive contribution, ordered by account id. Σ amount = pool
 * whenever some contribution is positive (else the result is empty and nothing is paid), and every amount
 * is within one unit of its exact proportional quota. Ties between equal remainders go to the smaller
 * account id, so the same input always gives the same split.
 *
 * The arithmetic is exact: each contribution (a double) is turned into an integer numerator over a common
 * power of two, and quotas are computed with BigInt, so rounding can never break Σ amount = pool, even for
 * a pool near 2^53 or contributions many orders of magnitude apart.
 */
export function splitPool(pool: number, contributions: readonly Contribution[]): Share[] {
  if (!Number.isSafeInteger(pool) || pool < 0) throw new RangeError(`pool must be a safe integer >= 0, got ${pool}`);
  const seen = new Set<string>();
  for (const { accountId, contribution } of contributions) {
    if (!Number.isFinite(contribution) || contribution < 0) {
      throw new RangeError(`contribution of ${accountId} must be a finite number >= 0, got ${contribution}`);
    }
    if (seen.has(accountId)) throw new RangeError(`account ${accountId} appears twice`);
    seen.add(accountId);
  }
  const paid = contributions.filter((c) => c.contribution > 0).sort((a, b) => compareIds(a.accountId, b.accountId));
  if (paid.length === 0) return [];

  const weights = exactWeights(paid.map((c) => c.contribution));
  const total = weights.reduce((sum, w) => sum + w, 0n);
  const totalFloat = paid.reduce((sum, c) => sum + c.contribution, 0);
  const units = BigInt(pool);
  const quotas = weights.map((weight, index) => ({
    index,
    floor: (units * weight) / total,
    remainder: (units * weight) % total, // the fractional part's numerator; all share the denominator `total`
  }));
  let left = units - quotas.reduce((sum, q) => sum + q.floor, 0n); // < number of accounts
  const byRemainder = [...quotas].sort((a, b) =>
    a.remainder === b.remainder ? a.index - b.index : a.remainder > b.remainder ? -1 : 1,
  );
  const amounts = quotas.map((q) => q.floor);
  for (const q of byRemainder) {
    if (left === 0n) break;
    amounts[q.index]! += 1n;
    left -= 1n;
  }
  return paid.map((c, index) => ({
    accountId: c.accountId,
    contribution: c.contribution,
    amount: Number(amounts[index]),
    share: Math.min(1, c.contribution / totalFloat),
  }));
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The values as integers proportional to them exactly: mantissas shifted onto the smallest exponent. */
function exactWeights(values: number[]): bigint[] {
  const parts = values.map(binaryParts);
  const lowest = parts.reduce((min, p) => Math.min(min, p.exponent), Infinity); // no spread: lists may be long
  return parts.map((p) => p.mantissa << BigInt(p.exponent - lowest));
}

/** A finite double >= 0 as mantissa × 2^exponent with an integer mantissa (IEEE 754 binary64 fields). */
function binaryParts(value: number): { mantissa: bigint; exponent: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const bits = view.getBigUint64(0);
  const biasedExponent = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  // subnormals have no implicit leading 1 and the fixed exponent of the smallest normal
  return biasedExponent === 0
    ? { mantissa: fraction, exponent: -1074 }
    : { mantissa: fraction | (1n << 52n), exponent: biasedExponent - 1075 };
}
