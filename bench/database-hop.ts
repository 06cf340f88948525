// `npx tsx bench/database-hop.ts`: the coordinator's own hop (scripted node answering at once, as in the relay
// benchmark's table (i)) on each database engine in one run: a PostgreSQL server (when DATABASE_URL is set), the
// embedded PGlite in its worker thread (the default) and PGlite on the coordinator's own thread (the old way).
// BENCH_ENGINES=postgres,worker,main picks engines; BENCH_ROUNDS=N repeats them (in turn, to spread the machine's
// noise); BENCH_QUICK=1 shortens every window. Markdown on stdout, progress on stderr.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { startCoordinatorProcess } from "./coordinator-process.ts";
import { createBenchDatabase } from "./database.ts";
import { startLoadProcess } from "./load-control.ts";
import { cpuSeconds } from "./proc-stats.ts";
import { fixed, markdownTable, percentile, whole } from "./stats.ts";
import { grpcChat, measureTtft, type TtftPlan } from "./ttft.ts";

const TOKENS = ["Hello", ",", " world", "!"];

interface Engine {
  id: "postgres" | "worker" | "main";
  label: string;
  serverUrl?: string;
  preload?: string[];
}

interface Row {
  engine: Engine;
  round: number;
  concurrency: number;
  rate: number;
  p50: number;
  p99: number;
  /** CPU ms per request: the coordinator process (all threads) and its main thread alone. */
  cpuMs: number;
  mainMs: number;
  /** The machine's 1-minute load average at the end of the window (other work skews every figure). */
  load: number;
}

const quick = process.env.BENCH_QUICK === "1";
const rounds = Number(process.env.BENCH_ROUNDS ?? 1);
const serverUrl = process.env.DATABASE_URL?.trim() || undefined;
const candidates: Engine[] = [
  ...(serverUrl ? [{ id: "postgres" as const, label: "PostgreSQL server", serverUrl }] : []),
  { id: "worker", label: "PGlite, worker thread (default)" },
  { id: "main", label: "PGlite, coordinator's thread", preload: ["./bench/pglite-main-thread.ts"] },
];
const engines = candidates.filter((engine) =>
  (process.env.BENCH_ENGINES ?? "postgres,worker,main").split(",").includes(engine.id),
);

const started = performance.now();
const progress = (line: string) =>
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);

async function measureEngine(
  engine: Engine,
  round: number,
  workDir: string,
  load: Awaited<ReturnType<typeof startLoadProcess>>,
): Promise<Row[]> {
  const maxMs = quick ? 4_000 : 10_000;
  const plans: TtftPlan[] = [
    { concurrency: 1, requests: quick ? 100 : 300, warmup: 30, maxMs },
    { concurrency: 100, requests: quick ? 500 : 2000, warmup: 200, maxMs },
  ];
  const database = await createBenchDatabase(engine.serverUrl);
  const rows: Row[] = [];
  try {
    const coordinator = await startCoordinatorProcess({
      env: database.env,
      workDir,
      name: `${engine.id}-${round}`,
      preload: engine.preload,
    });
    try {
      assertThread(coordinator.logFile, engine);
      const { accountKey } = database;
      await load.send({
        cmd: "scriptedNode",
        url: coordinator.url,
        accountKey,
        nodeId: `bench-${engine.id}-${round}`,
        slots: 100,
        tokens: TOKENS,
      });
      const chat = grpcChat(coordinator.url, accountKey).request;
      await measureTtft(chat, { concurrency: 20, requests: 0, warmup: 600, maxMs: 4_000 }); // JIT, pools, caches
      for (const plan of plans) {
        progress(`${engine.label}, round ${round}: ${plan.concurrency} streams`);
        const cpu0 = cpuSeconds(coordinator.pid);
        const main0 = cpuSeconds(coordinator.pid, coordinator.pid);
        const result = await measureTtft(chat, plan);
        const count = result.samples.length;
        rows.push({
          engine,
          round,
          concurrency: plan.concurrency,
          rate: result.rate,
          p50: percentile(result.samples, 50),
          p99: percentile(result.samples, 99),
          cpuMs: ((cpuSeconds(coordinator.pid) - cpu0) * 1000) / count,
          mainMs: ((cpuSeconds(coordinator.pid, coordinator.pid) - main0) * 1000) / count,
          load: loadavg()[0]!,
        });
      }
      await load.send({ cmd: "stopScriptedNodes" });
    } finally {
      await coordinator.stop();
    }
  } finally {
    await database.drop().catch((err: unknown) => progress(`could not drop the bench database: ${String(err)}`));
  }
  return rows;
}

/** The coordinator logs where PGlite runs; a preload that did not take would otherwise measure the wrong thing. */
function assertThread(logFile: string, engine: Engine): void {
  if (engine.id === "postgres") return;
  const opened = readFileSync(logFile, "utf8")
    .split("\n")
    .find((line) => line.includes("database opened"));
  const thread = opened ? (JSON.parse(opened) as { thread?: string }).thread : undefined;
  if (thread !== engine.id) throw new Error(`${engine.label}: the coordinator opened PGlite with thread ${thread}`);
}

/** One row per engine and concurrency: each column's median over the rounds (round 0). */
function medians(rows: Row[]): Row[] {
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  return engines.flatMap((engine) =>
    [...new Set(rows.map((row) => row.concurrency))].map((concurrency) => {
      const group = rows.filter((row) => row.engine === engine && row.concurrency === concurrency);
      const of = (key: "rate" | "p50" | "p99" | "cpuMs" | "mainMs" | "load") => median(group.map((row) => row[key]));
      return {
        engine,
        round: 0,
        concurrency,
        rate: of("rate"),
        p50: of("p50"),
        p99: of("p99"),
        cpuMs: of("cpuMs"),
        mainMs: of("mainMs"),
        load: of("load"),
      };
    }),
  );
}

function report(rows: Row[]): string {
  const postgresRate = (concurrency: number, round: number) =>
    rows.find((row) => row.engine.id === "postgres" && row.concurrency === concurrency && row.round === round)?.rate;
  const rounds = new Set(rows.map((row) => row.round)).size;
  return markdownTable(
    [
      "engine",
      ...(rounds > 1 ? ["round"] : []),
      "streams",
      "requests/s",
      "TTFT p50 ms",
      "TTFT p99 ms",
      "coordinator CPU ms/request",
      "of it main thread",
      "load average",
      "PostgreSQL's requests/s ÷ these",
    ],
    rows.map((row) => {
      const reference = postgresRate(row.concurrency, row.round);
      const ratio = reference ? `${fixed(reference / row.rate)}×` : "—";
      return [
        row.engine.label,
        ...(rounds > 1 ? [String(row.round)] : []),
        String(row.concurrency),
        whole(row.rate),
        fixed(row.p50),
        fixed(row.p99),
        fixed(row.cpuMs),
        fixed(row.mainMs),
        fixed(row.load, 1),
        ratio,
      ];
    }),
  );
}

const workDir = mkdtempSync(join(tmpdir(), "iris-bench-db-"));
const load = await startLoadProcess();
const rows: Row[] = [];
try {
  const cpu = cpus();
  console.log("## The coordinator's hop by database engine\n");
  console.log(
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? "unknown CPU"}); Node ${process.version}; coordinator ` +
      `as its own process ` +
      `(\`node --import tsx coordinator/main.ts\`), a scripted node and the clients in other processes; PGlite on ` +
      `disk in a temporary ` +
      `DATA_DIR as \`npm start\` uses it; load average at start ${loadavg()
        .map((n) => n.toFixed(2))
        .join(" ")}` +
      (quick ? "; BENCH_QUICK=1" : ""),
  );
  for (let round = 1; round <= rounds; round++) {
    // each round starts with the next engine, so none is always measured first (or last) on a busy machine
    const order = engines.map((_, i) => engines[(i + round - 1) % engines.length]!);
    for (const engine of order) rows.push(...(await measureEngine(engine, round, workDir, load)));
  }
  const byEngine = (list: Row[]) => engines.flatMap((engine) => list.filter((row) => row.engine === engine));
  console.log(`\n${report(byEngine(rows))}\n`);
  if (rounds > 1) console.log(`Medians of the ${rounds} rounds:\n\n${report(medians(rows))}\n`);
  console.log(
    `load average at the end: ${loadavg()
      .map((n) => n.toFixed(2))
      .join(" ")}`,
  );
} finally {
  await load.stop();
  if (process.env.BENCH_KEEP === "1") progress(`logs kept in ${workDir}`);
  else rmSync(workDir, { recursive: true, force: true });
}
progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
process.exit(0);
