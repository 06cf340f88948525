// What connected nodes that never answer classify assigns cost a chat (`npx tsx bench/silent-nodes.ts`): time to the
// chat's Accepted event (classification + node choice) with 0 and 500 such nodes, with and without one node that
// does answer (in ~20 ms). A real coordinator in this process, real NodeService streams (scripted nodes, one HTTP/2
// connection each), gRPC chats one at a time; prints a markdown table. BENCH_SILENT_NODES (500), BENCH_CHATS (20).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { startCoordinator } from "../coordinator/app.ts";
import { loadConfig } from "../coordinator/config.ts";
import { createLogger } from "../coordinator/logger.ts";
import { Difficulty, Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { ScriptedNodes } from "../test/support/scripted-node.ts";
import { createBenchDatabase, type BenchDatabase } from "./database.ts";
import { ascending, fixed, markdownTable, percentile } from "./stats.ts";

const SILENT = Number(process.env.BENCH_SILENT_NODES ?? 500);
const CHATS = Number(process.env.BENCH_CHATS ?? 20);
const BUDGET_MS = 2_000;
const JUDGE_MS = 20;

interface Scenario {
  name: string;
  silent: number;
  judge: boolean;
  budgetMs: number;
}

async function run(database: BenchDatabase, scenario: Scenario, index: number): Promise<string[]> {
  const config = loadConfig({
    ...database.env,
    HOST: "127.0.0.1",
    PORT: "0",
    COORDINATOR_PRIVATE_KEY_PATH: join(mkdtempSync(join(tmpdir(), "iris-bench-silent-")), "coordinator.key"),
    SPOT_CHECK_FRACTION: "0",
    CANARY_INTERVAL_MS: "0",
    RATE_LIMIT_ANONYMOUS_PER_DAY: "1000000",
    // every node's connection comes from 127.0.0.1 here
    MAX_CONNECTIONS_PER_ADDRESS: "0",
    CLASSIFIER_NODE_BUDGET_MS: String(scenario.budgetMs),
  });
  const quiet = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const coordinator = await startCoordinator(config, createLogger("warn", quiet));
  const nodes = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey: database.accountKey }));
  try {
    // a node that serves the chats but never answers classify, and the silent crowd (ranked above the judge)
    await nodes.start({ nodeId: `s${index}-server`, tokensPerSecond: 28, maxConcurrentTasks: 4 });
    for (let wave = 0; wave < scenario.silent; wave += 50) {
      const count = Math.min(50, scenario.silent - wave);
      await Promise.all(
        Array.from({ length: count }, (_, i) =>
          nodes.start({ nodeId: `s${index}-silent-${wave + i}`, tokensPerSecond: 28 }),
        ),
      );
    }
    let warmUp = 0;
    let warmUpMs = 0;
    if (scenario.judge) {
      const judge = await nodes.start({
        nodeId: `s${index}-judge`,
        tokensPerSecond: 25,
        classify: () => ({ difficulty: Difficulty.COMPLEX, delayMs: JUDGE_MS }),
      });
      // every higher-ranked node is probed first, one per request, each request answered by the rules at once
      const started = performance.now();
      for (; warmUp < scenario.silent + 2; warmUp++) {
        await coordinator.classifier.classify({
          messages: [{ role: "user", content: `Define word number ${warmUp}.` }],
        });
      }
      warmUpMs = performance.now() - started;
      while (judge.classifyAssigns.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, 200)); // its answer (20 ms) gives it a record
    }
    const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    const latencies: number[] = [];
    const deciders = new Map<string, number>();
    for (let i = 0; i < CHATS; i++) {
      const started = performance.now();
      const content = `What is the capital of country number ${i}?`;
      for await (const response of inference.chat({
        params: { messages: [{ role: Role.USER, content }], maxTokens: 4 },
      })) {
        if (response.event.case !== "accepted") continue;
        latencies.push(performance.now() - started);
        deciders.set(response.event.value.classifier, (deciders.get(response.event.value.classifier) ?? 0) + 1);
      }
    }
    const sorted = ascending(latencies);
    const node = coordinator.classifier.stats().links.node;
    return [
      scenario.name,
      String(CHATS),
      fixed(percentile(sorted, 50), 1),
      fixed(percentile(sorted, 90), 1),
      fixed(sorted.at(-1), 1),
      [...deciders].map(([name, count]) => `${name} ${count}`).join(", "),
      node
        ? Object.entries(node)
            .filter(([, count]) => count > 0)
            .map(([kind, count]) => `${kind} ${count}`)
            .join(", ") || "—"
        : "off",
      scenario.judge ? `${warmUp} in ${fixed(warmUpMs, 0)} ms` : "—",
    ];
  } finally {
    nodes.killAll();
    await coordinator.close();
  }
}

async function main(): Promise<void> {
  const database = await createBenchDatabase(process.env.DATABASE_URL);
  const scenarios: Scenario[] = [
    { name: "node link off (rules only)", silent: 0, judge: false, budgetMs: 0 },
    { name: "0 silent nodes", silent: 0, judge: false, budgetMs: BUDGET_MS },
    { name: `${SILENT} silent nodes`, silent: SILENT, judge: false, budgetMs: BUDGET_MS },
    { name: `0 silent nodes, 1 judge (${JUDGE_MS} ms)`, silent: 0, judge: true, budgetMs: BUDGET_MS },
    { name: `${SILENT} silent nodes, 1 judge (${JUDGE_MS} ms)`, silent: SILENT, judge: true, budgetMs: BUDGET_MS },
  ];
  const rows: string[][] = [];
  try {
    for (const [index, scenario] of scenarios.entries()) {
      process.stderr.write(`${scenario.name}…\n`);
      rows.push(await run(database, scenario, index));
    }
  } finally {
    await database.drop();
  }
  console.log(
    `### Chat classification with connected nodes that never answer ` +
      `classify\n\nCLASSIFIER_NODE_BUDGET_MS=${BUDGET_MS}. Every scenario has one more node, ranked above the judge, ` +
      `that serves the chats and never answers classify either (the silent nodes serve chats too). ${CHATS} chats ` +
      `one after another, each a new prompt; ms to the Accepted event. ${database.label}.\n`,
  );
  console.log(
    markdownTable(
      [
        "scenario",
        "chats",
        "p50 ms",
        "p90 ms",
        "max ms",
        "decided by",
        "node link",
        "requests until the judge is probed",
      ],
      rows,
      ["l", "r", "r", "r", "r", "l", "l", "r"],
    ),
  );
}

await main();
