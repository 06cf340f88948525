// The relay benchmark (`npm run bench:relay`, part of `npm run bench`): the coordinator as its own process,
// load in a peer process, this process measuring. (i) time to first token, (ii) tokens/s relayed with a CPU
// profile (nodes sending one chunk a token, then nodes chunking as agents do), (iii) idle nodes'
// cost. Markdown tables on stdout, progress on stderr.
// BENCH_ONLY=ttft,throughput,idle picks phases; BENCH_QUICK=1 shortens every window (for trying changes);
// BENCH_KEEP=1 keeps the coordinators' logs and CPU profiles; BENCH_PROFILE_TTFT=1 profiles the coordinator's hop;
// BENCH_COORDINATOR_NODE_OPTIONS passes V8/Node flags
// to the coordinator only; BENCH_COORDINATOR_LOG_LEVEL, BENCH_TOKENS_PER_CHAT, BENCH_IDLE_NODES tune the runs.
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, totalmem, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createBenchDatabase } from "./database.ts";
import { startLoadProcess, type LoadProcess } from "./load-control.ts";
import type { BenchContext } from "./relay-context.ts";
import { runIdleBench } from "./relay-idle.ts";
import { runThroughputBench } from "./relay-throughput.ts";
import { runTtftBench } from "./relay-ttft.ts";
import { codeVersion } from "./code-version.ts";

const phases = { ttft: runTtftBench, throughput: runThroughputBench, idle: runIdleBench } as const;

export async function runRelayBench(): Promise<void> {
  const quick = process.env.BENCH_QUICK === "1";
  const only = (process.env.BENCH_ONLY ?? Object.keys(phases).join(",")).split(",").map((name) => name.trim());
  const started = performance.now();
  const progress = (line: string) =>
    process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);
  const print = (markdown: string) => console.log(`\n${markdown}\n`);

  const workDir = mkdtempSync(join(tmpdir(), "iris-bench-"));
  const cleanups: (() => Promise<void>)[] = [];
  const database = await createBenchDatabase(process.env.DATABASE_URL?.trim() || undefined);
  let load: LoadProcess | undefined;
  const cleanUp = async () => {
    for (const task of cleanups.reverse().splice(0)) await task().catch(() => {});
    await load?.stop();
    await database.drop().catch((err: unknown) => progress(`could not drop the bench database: ${String(err)}`));
    if (process.env.BENCH_KEEP === "1") progress(`logs and profiles kept in ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => void cleanUp().then(() => process.exit(130)));

  const cpu = cpus();
  console.log("## Relay benchmark\n");
  console.log(
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? "unknown CPU"}), ${(totalmem() / 2 ** 30).toFixed(1)} ` +
      `GiB RAM; ` +
      `Node ${process.version} (${process.platform} ${process.arch}); coordinator: \`node --import tsx ` +
      `coordinator/main.ts\` ` +
      `as a separate process, LOG_LEVEL=${process.env.BENCH_COORDINATOR_LOG_LEVEL ?? "info"}` +
      (process.env.BENCH_COORDINATOR_NODE_OPTIONS
        ? `, NODE_OPTIONS=${process.env.BENCH_COORDINATOR_NODE_OPTIONS}`
        : "") +
      `; code: ${codeVersion()}; database: ${database.label}` +
      `; load average at start ${loadavg()
        .map((n) => n.toFixed(2))
        .join(" ")} (other work on the machine skews every figure)` +
      (quick ? "; BENCH_QUICK=1 (short windows)" : ""),
  );
  try {
    load = await startLoadProcess();
    const ctx: BenchContext = {
      database,
      load,
      workDir,
      quick,
      onCleanup: (task) => cleanups.push(task),
      print,
      progress,
    };
    for (const [name, run] of Object.entries(phases)) if (only.includes(name)) await run(ctx);
  } finally {
    await cleanUp();
  }
  console.log(
    `load average at the end: ${loadavg()
      .map((n) => n.toFixed(2))
      .join(" ")}`,
  );
  progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runRelayBench().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
