// The classifier benchmark (`npm run bench:classifier`): each link's accuracy (train and test split), confusion
// matrix and latency on bench/classifier-set.json, as markdown tables on stdout.
// OPENROUTER_API_KEY (+ OPENROUTER_URL, OPENROUTER_MODEL) runs the real OpenRouter link; without it a local stand-in
// shows the plumbing only. BENCH_NODE_BACKEND_URL (an OpenAI-compatible server, e.g. http://localhost:1234/v1)
// runs what a node would answer a classify assign with (agent/classify.ts on that backend).
import { classifyWithBackend } from "../agent/classify.ts";
import { createOpenAiCompatibleBackend } from "../agent/backends/openai-compatible.ts";
import { renderForClassification } from "../common/classify-prompt.ts";
import { loadConfig } from "../coordinator/config.ts";
import { DIFFICULTIES, type Difficulty } from "../coordinator/db/schema.ts";
import { classifyLocally } from "../coordinator/tasks/classifier.ts";
import { createOpenRouterClassifier } from "../coordinator/tasks/classify/openrouter.ts";
import { startOpenRouterStandin } from "../test/support/openrouter-standin.ts";
import { loadClassifierSet, type LabelledPrompt } from "./classifier-set.ts";

/** One item's outcome: the answer (undefined when the link failed) and how long it took, in microseconds. */
interface Run {
  item: LabelledPrompt;
  answer: Difficulty | undefined;
  micros: number;
}

const REMOTE_TIMEOUT_MS = 15_000;
const REMOTE_CONCURRENCY = 4;
const LOCAL_ROUNDS = 30;

function table(header: string[], rows: (string | number)[][]): string {
  const rule = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [header, rule, ...rows.map((row) => row.map(String))].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function accuracyRows(runs: Run[]): (string | number)[][] {
  const splits: [string, Run[]][] = [
    ["train (rules tuned on it)", runs.filter((r) => r.item.split === "train")],
    ["test (held out)", runs.filter((r) => r.item.split === "test")],
    ["all", runs],
  ];
  return splits.map(([name, part]) => {
    const right = part.filter((r) => r.answer === r.item.label).length;
    const failed = part.filter((r) => r.answer === undefined).length;
    return [name, part.length, right, failed, `${((100 * right) / part.length).toFixed(1)} %`];
  });
}

function confusion(runs: Run[], withFailures: boolean): string {
  const columns = withFailures ? [...DIFFICULTIES, "failed"] : [...DIFFICULTIES];
  const rows = DIFFICULTIES.map((label) => {
    const mine = runs.filter((r) => r.item.label === label);
    return [`**${label}**`, ...columns.map((column) => mine.filter((r) => (r.answer ?? "failed") === column).length)];
  });
  return table(["label ↓ / answer →", ...columns], rows);
}

function latency(runs: Run[], unit: "µs" | "ms"): string {
  const values = runs.map((r) => (unit === "µs" ? r.micros : r.micros / 1000)).sort((a, b) => a - b);
  const digits = unit === "µs" ? 1 : 0;
  return table(
    ["latency", "p50", "p99", "max"],
    [[unit, percentile(values, 50).toFixed(digits), percentile(values, 99).toFixed(digits), values.at(-1)!.toFixed(digits)]],
  );
}

function report(title: string, note: string, runs: Run[], unit: "µs" | "ms", withFailures: boolean): void {
  console.log(`\n### ${title}\n\n${note}\n`);
  console.log(table(["split", "items", "right", "failed", "accuracy"], accuracyRows(runs)));
  console.log(`\n${confusion(runs, withFailures)}\n`);
  console.log(latency(runs, unit));
}

function runLocal(items: LabelledPrompt[]): Run[] {
  for (let i = 0; i < 3; i++) for (const item of items) classifyLocally({ messages: item.messages }); // warm-up: JIT, regex tier-up
  const samples = new Map<LabelledPrompt, number[]>(items.map((item) => [item, []]));
  const answers = new Map<LabelledPrompt, Difficulty>();
  for (let round = 0; round < LOCAL_ROUNDS; round++) {
    for (const item of items) {
      const started = process.hrtime.bigint();
      answers.set(item, classifyLocally({ messages: item.messages }));
      samples.get(item)!.push(Number(process.hrtime.bigint() - started) / 1000);
    }
  }
  // one run per item, at its median over the rounds: a GC pause in one round is not the classifier's cost
  return items.map((item) => {
    const sorted = samples.get(item)!.sort((a, b) => a - b);
    return { item, answer: answers.get(item), micros: percentile(sorted, 50) };
  });
}

async function runRemote(items: LabelledPrompt[], ask: (item: LabelledPrompt, signal: AbortSignal) => Promise<Difficulty>): Promise<Run[]> {
  // one untimed request first: connection setup (TLS to OpenRouter) is not a classification's cost
  await ask(items[0]!, AbortSignal.timeout(REMOTE_TIMEOUT_MS)).catch(() => {});
  const runs: Run[] = [];
  const queue = [...items];
  const errors = new Map<string, number>();
  const worker = async () => {
    for (let item = queue.shift(); item; item = queue.shift()) {
      const started = performance.now();
      let answer: Difficulty | undefined;
      try {
        answer = await ask(item, AbortSignal.timeout(REMOTE_TIMEOUT_MS));
      } catch (error) {
        const message = error instanceof Error ? error.message.slice(0, 80) : String(error);
        errors.set(message, (errors.get(message) ?? 0) + 1);
      }
      runs.push({ item, answer, micros: (performance.now() - started) * 1000 });
    }
  };
  await Promise.all(Array.from({ length: REMOTE_CONCURRENCY }, worker));
  for (const [message, count] of errors) process.stderr.write(`  ${count}× ${message}\n`);
  return items.map((item) => runs.find((run) => run.item === item)!);
}

function misses(runs: Run[]): void {
  const wrong = runs.filter((r) => r.answer !== r.item.label);
  if (wrong.length === 0) return;
  console.log("\nMisclassified:\n");
  for (const r of wrong) {
    const text = r.item.messages.at(-1)!.content.replace(/\s+/g, " ").slice(0, 90);
    console.log(`- \`${r.item.id}\` (${r.item.split}, ${r.item.kind}) ${r.item.label} → ${r.answer ?? "failed"}: ${text}`);
  }
}

async function main(): Promise<void> {
  const items = loadClassifierSet();
  const count = (key: (item: LabelledPrompt) => string) =>
    [...Map.groupBy(items, key)].map(([name, group]) => `${name} ${group.length}`).join(", ");
  console.log("## Classifier benchmark\n");
  console.log(`${items.length} labelled prompts (bench/classifier-set.json): ${count((i) => i.label)}; splits ${count((i) => i.split)}.`);
  console.log(`Languages: ${count((i) => i.lang)}. Node ${process.version}.`);

  const local = runLocal(items);
  report("local rules", `\`classifyLocally\`, median of ${LOCAL_ROUNDS} calls per prompt.`, local, "µs", false);
  const byLanguage = [...Map.groupBy(local, (r) => r.item.lang)].map(([lang, runs]) => [
    lang,
    runs.length,
    `${((100 * runs.filter((r) => r.answer === r.item.label).length) / runs.length).toFixed(0)} %`,
  ]);
  console.log(`\n${table(["language", "items", "accuracy"], byLanguage)}`);
  misses(local);

  const config = loadConfig();
  if (config.openRouter.apiKey) {
    const link = createOpenRouterClassifier({ apiKey: config.openRouter.apiKey, url: config.openRouter.url, model: config.openRouter.model });
    const runs = await runRemote(items, async (item, signal) => (await link.classify({ messages: item.messages, signal })).difficulty);
    report(`openrouter (${config.openRouter.model})`, `${config.openRouter.url}, ${REMOTE_CONCURRENCY} requests at a time.`, runs, "ms", true);
    misses(runs);
  } else {
    const standin = await startOpenRouterStandin({ content: '{"difficulty":"COMPLEX"}' });
    try {
      const link = createOpenRouterClassifier({ apiKey: "stand-in", url: standin.url, model: "stand-in" });
      const runs = await runRemote(items, async (item, signal) => (await link.classify({ messages: item.messages, signal })).difficulty);
      report(
        "openrouter — STAND-IN, not a model",
        "OPENROUTER_API_KEY is not set: the link ran against a local stand-in that always answers " +
          '`{"difficulty":"COMPLEX"}`. This shows the plumbing (HTTP, strict parsing) and its overhead; the accuracy is ' +
          "just the share of COMPLEX labels. Set OPENROUTER_API_KEY to measure a real model.",
        runs,
        "ms",
        true,
      );
    } finally {
      await standin.close();
    }
  }

  const nodeBackendUrl = process.env.BENCH_NODE_BACKEND_URL?.trim();
  if (nodeBackendUrl) {
    const backend = createOpenAiCompatibleBackend({ baseUrl: nodeBackendUrl });
    const model = (await backend.describe()).name;
    const runs = await runRemote(items, (item, signal) => classifyWithBackend(backend, renderForClassification(item.messages), signal));
    report(`node (${model})`, `What a node answers a classify assign with: agent/classify.ts on ${nodeBackendUrl}.`, runs, "ms", true);
    misses(runs);
    await backend.close();
  } else {
    console.log(
      "\n### node\n\nSkipped: set BENCH_NODE_BACKEND_URL to an OpenAI-compatible server (LM Studio, Ollama, llama.cpp, " +
        "vLLM) to measure what a node's model answers. The test fixture's tiny GGUF has random weights, so it would measure noise.",
    );
  }
}

await main();
