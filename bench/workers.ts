// WORKERS=1 against WORKERS=2 (issue #12): the coordinator as `WORKERS=N` (a primary forking N coordinator processes
// on the one port, joined over NATS, one PostgreSQL), nodes and clients in the peer process (load-process.ts), each
// on its own connection, so the primary spreads them over the workers and about half of the chats cross from one
// worker to another over NATS. (i) Requests/s through the coordinator hop: closed-loop clients, scripted nodes that
// answer at once. (ii) Tokens/s relayed: load nodes emitting sealed chunks at offered rates. Then the cross-coordinator
// hop (cluster-hop.ts). Part of `npm run bench`; needs a PostgreSQL DATABASE_URL and NATS (NATS_URL, default
// nats://127.0.0.1:4222). BENCH_QUICK=1 shortens the windows and the hop's run (`npm run bench:cluster` runs it
// longer).
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { natsAnswers } from "../test/support/nats.ts";
import { runClusterHopBench } from "./cluster-hop.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "./coordinator-process.ts";
import { createBenchDatabase, type BenchDatabase } from "./database.ts";
import { startLoadProcess, type LoadProcess } from "./load-control.ts";
import type { WindowResult } from "./load-process.ts";
import { cpuSeconds, natsServerPid } from "./proc-stats.ts";
import { sleep, whole } from "./stats.ts";
import { RELAY, REQUESTS, workersReport, type Row } from "./workers-report.ts";

export async function runWorkersBench(): Promise<void> {
  const quick = process.env.BENCH_QUICK === "1";
  const natsUrl = process.env.NATS_URL?.trim() || "nats://127.0.0.1:4222";
  const databaseUrl = process.env.DATABASE_URL?.trim();
  const started = performance.now();
  const progress = (line: string) =>
    process.stderr.write(
      `[bench workers ${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}\n`,
    );
  console.log("\n## Coordinator workers (WORKERS=1 vs 2) and the cross-coordinator hop\n");
  if (!databaseUrl || !/^postgres(ql)?:/.test(databaseUrl)) {
    console.log(
      "skipped: WORKERS > 1 needs a PostgreSQL DATABASE_URL (the workers share one server); this run has none.\n",
    );
    return;
  }
  if (!(await natsAnswers(natsUrl))) {
    console.log(
      `skipped: WORKERS > 1 needs NATS; nothing answers at ${natsUrl} (start one: nats-server -a 127.0.0.1 -p 4222 ` +
        `-js).\n`,
    );
    return;
  }
  const windowMs = quick ? 3_000 : 6_000;
  const settleMs = quick ? 1_000 : 2_000;
  const workDir = mkdtempSync(join(tmpdir(), "iris-bench-workers-"));
  const database = await createBenchDatabase(databaseUrl);
  const loadAtStart = loadavg()
    .map((n) => n.toFixed(2))
    .join(" ");
  let load: LoadProcess | undefined;
  let coordinator: CoordinatorProcess | undefined;
  const rows: Row[] = [];
  try {
    load = await startLoadProcess();
    for (const workers of [1, 2]) {
      progress(`WORKERS=${workers}: starting the coordinator`);
      coordinator = await startPool(workers, database, natsUrl, workDir);
      const measure = async (phase: Row["phase"], offered?: number): Promise<Row> => {
        await sleep(settleMs);
        const pids = { coordinator: coordinator!.pid, nats: natsServerPid(), load: load!.pid };
        const cpu0 = {
          coordinator: treeCpuSeconds(pids.coordinator),
          nats: pids.nats ? treeCpuSeconds(pids.nats) : 0,
          load: treeCpuSeconds(pids.load),
        };
        const t0 = performance.now();
        const window = await load!.send<WindowResult>({ cmd: "window", ms: windowMs });
        const percent = (pid: number, before: number) =>
          ((treeCpuSeconds(pid) - before) / ((performance.now() - t0) / 1000)) * 100;
        const row: Row = {
          workers,
          phase,
          offered,
          window,
          cpu: percent(pids.coordinator, cpu0.coordinator),
          natsCpu: pids.nats ? percent(pids.nats, cpu0.nats) : undefined,
          loadCpu: percent(pids.load, cpu0.load),
        };
        const { cpu } = row;
        rows.push(row);
        progress(
          `  ${phase}${offered ? ` offered ${offered}/s` : ""}: ${whole(window.chats / window.seconds)} ` +
            `chats/s, ${whole(window.tokens / window.seconds)} tokens/s, ` +
            `CPU ${cpu.toFixed(0)}%${window.errors ? `, ${window.errors} errors (${window.firstError})` : ""}`,
        );
        return row;
      };

      progress(`WORKERS=${workers}: (i) requests/s, ${REQUESTS.nodes} scripted nodes × ${REQUESTS.slots} slots`);
      for (let i = 0; i < REQUESTS.nodes; i++) {
        await load.send({
          cmd: "scriptedNode",
          url: coordinator.url,
          accountKey: database.accountKey,
          nodeId: `w${workers}-scripted-${i}`,
          slots: REQUESTS.slots,
          tokens: REQUESTS.tokens,
        });
      }
      await load.send({
        cmd: "clients",
        url: coordinator.url,
        accountKey: database.accountKey,
        clients: REQUESTS.nodes * REQUESTS.slots,
        tokensPerChat: REQUESTS.tokens.length,
      });
      await measure("requests");
      await load.send({ cmd: "stopClients" });
      await load.send({ cmd: "stopScriptedNodes" });

      progress(`WORKERS=${workers}: (ii) tokens/s, ${RELAY.nodes} load nodes × ${RELAY.slots} slots`);
      await load.send({
        cmd: "nodes",
        url: coordinator.url,
        accountKey: database.accountKey,
        count: RELAY.nodes,
        slots: RELAY.slots,
        prefix: `w${workers}-load`,
      });
      await load.send({ cmd: "rate", tokensPerSecond: RELAY.ladder[0]! });
      await load.send({
        cmd: "clients",
        url: coordinator.url,
        accountKey: database.accountKey,
        clients: RELAY.nodes * RELAY.slots,
        tokensPerChat: RELAY.tokensPerChat,
      });
      // the whole ladder for both, so the two rows compare window for window
      for (const offered of quick ? RELAY.ladder.slice(1, 3) : RELAY.ladder) {
        await load.send({ cmd: "rate", tokensPerSecond: offered });
        await measure("relay", offered);
      }
      await load.send({ cmd: "stopClients" });
      await load.send({ cmd: "stopNodes" });
      await coordinator.stop();
      coordinator = undefined;
    }
  } finally {
    await coordinator?.stop().catch(() => {});
    await load?.stop();
    await database.drop().catch((err: unknown) => progress(`could not drop the bench database: ${String(err)}`));
    rmSync(workDir, { recursive: true, force: true });
  }
  console.log(workersReport(rows, { windowMs, settleMs, loadAtStart, databaseLabel: database.label, natsUrl }));

  progress("the cross-coordinator hop");
  const hop = await runClusterHopBench({ chats: quick ? 50 : 100, natsUrl });
  console.log(`\n### The cross-coordinator hop (request on A, node on B)\n\n${hop.markdown}\n`);
  progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

/** `WORKERS=workers` on a port of its own, returned once every worker listens. */
async function startPool(
  workers: number,
  database: BenchDatabase,
  natsUrl: string,
  workDir: string,
): Promise<CoordinatorProcess> {
  const coordinator = await startCoordinatorProcess({
    env: {
      ...database.env,
      WORKERS: String(workers),
      PORT: String(await freePort()),
      NATS_URL: natsUrl,
      CLUSTER_NAME: `bench-workers-${randomBytes(4).toString("hex")}`,
      // long chats at low per-stream rates must not meet the SIMPLE deadline; no canaries or spot checks in the counts
      ...{
        TASK_TIMEOUT_SIMPLE_MS: "600000",
        SPOT_CHECK_FRACTION: "0",
        CANARY_INTERVAL_MS: "0",
        CLASSIFIER_NODE_BUDGET_MS: "0",
      },
    },
    workDir,
    name: `workers-${workers}`,
  });
  for (let waited = 0; listening(coordinator.logFile) < workers; waited += 100) {
    if (waited > 60_000)
      throw new Error(`only ${listening(coordinator.logFile)} of ${workers} workers listened within 60 s`);
    await sleep(100);
  }
  await sleep(1_000); // the workers hear each other before nodes arrive
  return coordinator;
}

function listening(logFile: string): number {
  return readFileSync(logFile, "utf8")
    .split("\n")
    .filter((line) => line.includes("coordinator listening")).length;
}

/** A port free right now: the workers all listen on the one the primary was given. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** CPU seconds of a process and all its descendants (the primary and its workers). */
function treeCpuSeconds(pid: number): number {
  let total = 0;
  try {
    total += cpuSeconds(pid);
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean))
        total += treeCpuSeconds(Number(child));
    }
  } catch {
    // a process that exited between the reads counts no more
  }
  return total;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runWorkersBench().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
