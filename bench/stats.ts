// Small numeric and printing pieces the benchmarks share: percentiles, rounding, markdown tables.

/** Nearest-rank percentile of an ascending array (p in 0..100); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function ascending(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** A fixed number of decimals, or "n/a" for a missing value. */
export function fixed(value: number | undefined, decimals = 2): string {
  return value === undefined || !Number.isFinite(value) ? "n/a" : value.toFixed(decimals);
}

/** A whole number with thin grouping, e.g. 104 250 → "104,250". */
export function whole(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "n/a" : Math.round(value).toLocaleString("en-US");
}

export function signed(value: number | undefined, decimals = 2): string {
  if (value === undefined || !Number.isFinite(value)) return "n/a";
  return (value >= 0 ? "+" : "") + value.toFixed(decimals);
}

/** A markdown table; `align` is "l" or "r" per column (numbers right). */
export function markdownTable(header: string[], rows: string[][], align?: ("l" | "r")[]): string {
  const rule = header.map((_, i) => ((align?.[i] ?? (i === 0 ? "l" : "r")) === "r" ? "---:" : "---"));
  return [header, rule, ...rows].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
