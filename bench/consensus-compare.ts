// How long the consensus comparison takes on long answers (`npx tsx bench/consensus-compare.ts`): the answer pairs of
// coordinator/tasks/division/compare.test.ts (20,000 words: one word changed, both ends changed, every word
// different) and shorter ones, each compared BENCH_RUNS (20) times; prints a markdown table of ms per comparison.
import { sameAnswer } from "../coordinator/tasks/division/compare.ts";
import { ascending, fixed, markdownTable, percentile } from "./stats.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 20);

const rows: string[][] = [];
for (const length of [500, 5_000, 20_000]) {
  const words = Array.from({ length }, (_, i) => `w${i % 97}`);
  const long = words.join(" ");
  const pairs: [string, string, boolean][] = [
    ["one word changed", long.replace("w5 ", "v5 "), true],
    ["both ends changed", ["first", ...words.slice(1, -1), "last"].join(" "), true],
    ["every word different", words.map((w) => `${w}x`).join(" "), false],
  ];
  for (const [what, other, agree] of pairs) {
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      if (sameAnswer(long, other, 0.9) !== agree) throw new Error(`${what} at ${length} words: wrong verdict`);
      times.push(performance.now() - started);
    }
    const sorted = ascending(times);
    rows.push([
      `${length.toLocaleString("en")} words, ${what}`,
      fixed(percentile(sorted, 50)),
      fixed(percentile(sorted, 99)),
    ]);
  }
}
console.log(markdownTable(["answers", "p50 ms", "p99 ms"], rows));
