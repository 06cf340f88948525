// The classifier benchmark (`npm run bench:classifier`): the local model on the frozen test split
// (coordinator/tasks/classify/corpus/test-split.txt) and on the older labelled set (bench/classifier-set.json):
// accuracy, confusion matrix, under-classification, per-language figures and latency, as markdown tables on stdout.
// OPENROUTER_API_KEY (+ OPENROUTER_URL, OPENROUTER_MODEL) runs the real OpenRouter link on the older set; without it
// a local stand-in shows the plumbing only. BENCH_NODE_BACKEND_URL (an OpenAI-compatible server, e.g.
// http://localhost:1234/v1) runs what a node would answer a classify assign with (agent/classify.ts on that backend).
import { classifyWithBackend } from "../agent/classify.ts";
import { createOpenAiCompatibleBackend } from "../agent/backends/openai-compatible.ts";
import { renderForNode } from "../common/classify-prompt.ts";
import { loadConfig } from "../coordinator/config.ts";
import type { Difficulty } from "../common/vocabulary.ts";
import { loadTestSplit, toMessages } from "../coordinator/tasks/classify/corpus.ts";
import { classifyLocally, MODEL_FILE, shippedModel } from "../coordinator/tasks/classify/model.ts";
import { createOpenRouterClassifier } from "../coordinator/tasks/classify/openrouter.ts";
import { startOpenRouterStandin } from "../test/support/openrouter-standin.ts";
import { loadClassifierSet, type LabelledPrompt } from "./classifier-set.ts";
import { byGroup, misses, percentile, report, type Run } from "./classifier-report.ts";

const REMOTE_TIMEOUT_MS = 15_000;
const REMOTE_CONCURRENCY = 4;
const LOCAL_ROUNDS = 30;
function runLocal(items: LabelledPrompt[]): Run[] {
  for (let i = 0; i < 3; i++) for (const item of items) classifyLocally({ messages: item.messages }); // warm-up: JIT
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

async function runRemote(
  items: LabelledPrompt[],
  ask: (item: LabelledPrompt, signal: AbortSignal) => Promise<Difficulty>,
): Promise<Run[]> {
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

/** The frozen test split as bench items. */
function frozenSplit(): LabelledPrompt[] {
  return loadTestSplit().map((item) => ({
    id: item.id,
    lang: item.lang,
    kind: item.kind,
    label: item.label,
    split: "test",
    messages: toMessages(item.text),
  }));
}

async function main(): Promise<void> {
  const frozen = frozenSplit();
  const old = loadClassifierSet();
  const model = shippedModel();
  const count = (items: LabelledPrompt[], key: (item: LabelledPrompt) => string) =>
    [...Map.groupBy(items, key)].map(([name, group]) => `${name} ${group.length}`).join(", ");
  console.log("## Classifier benchmark\n");
  console.log(
    `Frozen test split: ${frozen.length} ` +
      `prompts, ${count(frozen, (i) => i.label)}; ${new Set(frozen.map((i) => i.lang)).size} languages.`,
  );
  console.log(
    `Older set (bench/classifier-set.json): ${old.length} prompts, ${count(old, (i) => i.label)}. ` +
      `Node ${process.version}.`,
  );
  console.log(
    `Model: ${MODEL_FILE.pathname.split("/").at(-1)}, ${JSON.stringify(model.header.training)}; ` +
      `offsets ${JSON.stringify(model.header.offsets)}.`,
  );

  const local = runLocal(frozen);
  report(
    "local model — frozen test split",
    `\`classifyLocally\`, median of ${LOCAL_ROUNDS} calls per prompt. Never trained on; its misses are not listed, ` +
      `so that nobody ` +
      "writes training data against them (every scored change is logged in docs/classifier.md).",
    local,
    "µs",
  );
  console.log(`\n${byGroup(local, (i) => i.lang, "language")}`);
  console.log(`\n${byGroup(local, (i) => `${i.label[0]} ${i.kind}`, "kind")}`);

  const localOld = runLocal(old);
  report(
    "local model — older set",
    "The set the retired rules were tuned on (its splits are the rules' splits); the model never trained on it.",
    localOld,
    "µs",
    { bySplit: true },
  );
  console.log(`\n${byGroup(localOld, (i) => i.lang, "language")}`);
  misses(localOld);

  const config = loadConfig();
  if (config.openRouter.apiKey) {
    const link = createOpenRouterClassifier({
      apiKey: config.openRouter.apiKey,
      url: config.openRouter.url,
      model: config.openRouter.model,
    });
    const runs = await runRemote(
      old,
      async (item, signal) => (await link.classify({ messages: item.messages, signal })).difficulty,
    );
    report(
      `openrouter (${config.openRouter.model}) — older set`,
      `${config.openRouter.url}, ${REMOTE_CONCURRENCY} requests at a time.`,
      runs,
      "ms",
      { withFailures: true },
    );
    misses(runs);
  } else {
    const standin = await startOpenRouterStandin({ content: '{"difficulty":"COMPLEX"}' });
    try {
      const link = createOpenRouterClassifier({ apiKey: "stand-in", url: standin.url, model: "stand-in" });
      const runs = await runRemote(
        old,
        async (item, signal) => (await link.classify({ messages: item.messages, signal })).difficulty,
      );
      report(
        "openrouter — STAND-IN, not a model",
        "OPENROUTER_API_KEY is not set: the link ran against a local stand-in that always answers " +
          '`{"difficulty":"COMPLEX"}`. This shows the plumbing (HTTP, strict parsing) and its overhead; the accuracy ' +
          "is just the share of COMPLEX labels. Set OPENROUTER_API_KEY to measure a real model.",
        runs,
        "ms",
        { withFailures: true },
      );
    } finally {
      await standin.close();
    }
  }

  const nodeBackendUrl = process.env.BENCH_NODE_BACKEND_URL?.trim();
  if (nodeBackendUrl) {
    const backend = createOpenAiCompatibleBackend({ baseUrl: nodeBackendUrl });
    const name = (await backend.describe()).name;
    for (const [setName, items] of [
      ["frozen test split", frozen],
      ["older set", old],
    ] as const) {
      const runs = await runRemote(items, (item, signal) =>
        classifyWithBackend(backend, renderForNode(item.messages), signal),
      );
      report(
        `node (${name}) — ${setName}`,
        `What a node answers a classify assign with: agent/classify.ts on ${nodeBackendUrl}.`,
        runs,
        "ms",
        { withFailures: true },
      );
    }
    await backend.close();
  } else {
    console.log(
      "\n### node\n\nSkipped: set BENCH_NODE_BACKEND_URL to an OpenAI-compatible server (LM Studio, Ollama, " +
        "llama.cpp, vLLM) to measure what a node's model answers. The test fixture's tiny GGUF has random weights, " +
        "so it would measure noise.",
    );
  }
}

await main();
