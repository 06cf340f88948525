// The classifier benchmark's tables (bench/classifier.ts): accuracy, confusion matrix, per-group figures, latency and
// the misclassified items, as markdown on stdout.
import { DIFFICULTIES, type Difficulty } from "../common/vocabulary.ts";
import type { LabelledPrompt } from "./classifier-set.ts";

/** One item's outcome: the answer (undefined when the link failed) and how long it took, in microseconds. */
export interface Run {
  item: LabelledPrompt;
  answer: Difficulty | undefined;
  micros: number;
}

const rank = (d: Difficulty) => DIFFICULTIES.indexOf(d);

function table(header: string[], rows: (string | number)[][]): string {
  const rule = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [header, rule, ...rows.map((row) => row.map(String))].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}

export function percentile(sorted: number[], p: number): number {
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const percent = (part: number, whole: number) => `${((100 * part) / Math.max(1, whole)).toFixed(1)} %`;

/** Items, right, accuracy, under-classified (answered below the label: the costly direction), over-classified. */
function scoreRow(name: string, runs: Run[]): (string | number)[] {
  const right = runs.filter((r) => r.answer === r.item.label).length;
  const under = runs.filter((r) => r.answer !== undefined && rank(r.answer) < rank(r.item.label)).length;
  const over = runs.filter((r) => r.answer !== undefined && rank(r.answer) > rank(r.item.label)).length;
  const failed = runs.filter((r) => r.answer === undefined).length;
  return [
    name,
    runs.length,
    right,
    percent(right, runs.length),
    percent(under, runs.length),
    percent(over, runs.length),
    failed,
  ];
}

const SCORE_HEADER = ["", "items", "right", "accuracy", "under-classified", "over-classified", "failed"];

function accuracyTable(runs: Run[], bySplit: boolean): string {
  const rows = [
    scoreRow("all", runs),
    ...DIFFICULTIES.map((label) =>
      scoreRow(
        label,
        runs.filter((r) => r.item.label === label),
      ),
    ),
  ];
  if (bySplit)
    for (const split of ["train", "test"] as const)
      rows.push(
        scoreRow(
          `old ${split} split`,
          runs.filter((r) => r.item.split === split),
        ),
      );
  return table(SCORE_HEADER, rows);
}

function confusion(runs: Run[], withFailures: boolean): string {
  const columns = withFailures ? [...DIFFICULTIES, "failed"] : [...DIFFICULTIES];
  const rows = DIFFICULTIES.map((label) => {
    const mine = runs.filter((r) => r.item.label === label);
    return [`**${label}**`, ...columns.map((column) => mine.filter((r) => (r.answer ?? "failed") === column).length)];
  });
  return table(["label ↓ / answer →", ...columns], rows);
}

export function byGroup(runs: Run[], key: (item: LabelledPrompt) => string, title: string): string {
  const groups = [...Map.groupBy(runs, (r) => key(r.item))].sort(([a], [b]) => a.localeCompare(b));
  return table(
    [title, "items", "right", "accuracy", "under-classified", "over-classified", "failed"],
    groups.map(([name, group]) => scoreRow(name, group)),
  );
}

function latency(runs: Run[], unit: "µs" | "ms"): string {
  const values = runs.map((r) => (unit === "µs" ? r.micros : r.micros / 1000)).sort((a, b) => a - b);
  const digits = unit === "µs" ? 1 : 0;
  return table(
    ["latency", "p50", "p99", "max"],
    [
      [
        unit,
        percentile(values, 50).toFixed(digits),
        percentile(values, 99).toFixed(digits),
        values.at(-1)!.toFixed(digits),
      ],
    ],
  );
}

export function report(
  title: string,
  note: string,
  runs: Run[],
  unit: "µs" | "ms",
  options: { bySplit?: boolean; withFailures?: boolean } = {},
): void {
  console.log(`\n### ${title}\n\n${note}\n`);
  console.log(accuracyTable(runs, options.bySplit ?? false));
  console.log(`\n${confusion(runs, options.withFailures ?? false)}\n`);
  console.log(latency(runs, unit));
}

export function misses(runs: Run[]): void {
  const wrong = runs.filter((r) => r.answer !== r.item.label);
  if (wrong.length === 0) return;
  console.log("\nMisclassified:\n");
  for (const r of wrong) {
    const text = r.item.messages.at(-1)!.content.replace(/\s+/g, " ").slice(0, 90);
    console.log(
      `- \`${r.item.id}\` (${r.item.split}, ${r.item.kind}) ${r.item.label} → ${r.answer ?? "failed"}: ${text}`,
    );
  }
}
