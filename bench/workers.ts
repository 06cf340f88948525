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
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { natsAnswers } from "../test/support/nats.ts";
import { runClusterHopBench } from "./cluster-hop.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "./coordinator-process.ts";
import { createBenchDatabase, type BenchDatabase } from "./database.ts";
import { startLoadProcess, type LoadProcess } from "./load-control.ts";
import type { WindowResult } from "./load-process.ts";
import { cpuSeconds } from "./proc-stats.ts";
import { fixed, markdownTable, sleep, whole } from "./stats.ts";

/** (i): scripted nodes × slots, and as many closed-loop clients as slots. */
const REQUESTS = { nodes: 10, slots: 10, tokens: ["Bon", "jour", " à", " tous", "!"] };
/** (ii): load nodes × slots (one chat stream each), chats of this many tokens, offered rates in this order. */
const RELAY = { nodes: 20, slots: 5, tokensPerChat: 1_000, ladder: [5_000, 10_000, 20_000, 40_000] };
/** Delivered below this share of the offered rate counts as falling behind. */
const KEEPS_UP = 0.9;

interface Row {
  workers: number;
  phase: "requests" | "relay";
  offered?: number;
  window: WindowResult;
  /** CPU of the primary and every worker together, % of one core. */
  cpu: number;
  /** The NATS server's and the peer process's CPU, % of one core (the other processes on the cores). */
  natsCpu?: number;
  loadCpu: number;
}

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

/** The local nats-server's pid, when it runs on this machine (its CPU is part of what a worker hop costs). */
function natsServerPid(): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "nats-server") return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
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

function workersReport(
  rows: Row[],
  run: { windowMs: number; settleMs: number; loadAtStart: string; databaseLabel: string; natsUrl: string },
): string {
  const rate = (row: Row) => row.window.tokens / row.window.seconds;
  const keptUp = (row: Row) => row.offered !== undefined && rate(row) >= KEEPS_UP * row.offered;
  const summary = [1, 2].map((workers) => {
    const requests = rows.find((r) => r.workers === workers && r.phase === "requests");
    const relay = rows.filter((r) => r.workers === workers && r.phase === "relay");
    const peak = relay
      .filter(keptUp)
      .reduce<Row | undefined>((best, r) => (best && rate(best) >= rate(r) ? best : r), undefined);
    const most = relay.reduce<Row | undefined>((best, r) => (best && rate(best) >= rate(r) ? best : r), undefined);
    return [
      `WORKERS=${workers}`,
      requests ? whole(requests.window.chats / requests.window.seconds) : "n/a",
      requests ? fixed(requests.cpu, 0) : "n/a",
      peak ? whole(rate(peak)) : "none kept up",
      most ? `${whole(rate(most))}${most === peak ? "" : " (behind)"}` : "n/a",
      most ? fixed(most.cpu, 0) : "n/a",
      String(rows.filter((r) => r.workers === workers).reduce((sum, r) => sum + r.window.errors, 0)),
    ];
  });
  const details = rows.map((r) => [
    `WORKERS=${r.workers}`,
    r.phase === "requests"
      ? `(i) ${REQUESTS.nodes * REQUESTS.slots} chats at once`
      : `(ii) offered ${whole(r.offered)} tok/s`,
    whole(r.window.chats / r.window.seconds),
    r.phase === "relay" ? whole(r.window.emitted / r.window.seconds) : "—",
    whole(r.window.tokens / r.window.seconds),
    r.phase === "relay" ? fixed(r.window.latencyP50, 1) : "—",
    r.phase === "relay" ? fixed(r.window.latencyP99, 1) : "—",
    fixed(r.cpu, 0),
    fixed(r.natsCpu, 0),
    fixed(r.loadCpu, 0),
    String(r.window.errors),
  ]);
  return (
    `### Requests/s and tokens/s through the coordinator, 1 and 2 workers\n\n` +
    `machine: ${cpus().length} cores, Node ${process.version}; load average ${run.loadAtStart} at the start, ${loadavg()
      .map((n) => n.toFixed(2))
      .join(" ")} at the end; ` +
    `database: ${run.databaseLabel}; NATS ${run.natsUrl}. The coordinator is \`WORKERS=N npm start\`'s process tree ` +
    `(the primary ` +
    `and its workers; CPU % is of one core, all of them together); nodes and clients share one peer process, each on ` +
    `its own ` +
    `connection to the one port. (i) ${REQUESTS.nodes} scripted nodes × ${REQUESTS.slots} slots ` +
    `answering ${REQUESTS.tokens.length} ` +
    `chunks at once, ${REQUESTS.nodes * REQUESTS.slots} closed-loop gRPC Chat clients. (ii) ${RELAY.nodes} load ` +
    `nodes × ${RELAY.slots} slots, ` +
    `one sealed chunk per token, ${RELAY.nodes * RELAY.slots} clients with chats of ${RELAY.tokensPerChat} tokens, ` +
    `at each offered rate ` +
    `in turn; a window keeps up when clients got at least ${KEEPS_UP * 100}% of it. Windows ` +
    `of ${run.windowMs / 1000} s after ${run.settleMs / 1000} s of settling.\n\n` +
    markdownTable(
      [
        "",
        "requests/s (i)",
        "CPU % (i)",
        "tokens/s relayed, peak keeping up (ii)",
        "tokens/s, most in a window (ii)",
        "CPU % at most (ii)",
        "errors",
      ],
      summary,
    ) +
    `\n\nEvery window:\n\n` +
    markdownTable(
      [
        "",
        "window",
        "chats/s",
        "tokens/s sent by nodes",
        "tokens/s received",
        "token latency p50 ms",
        "token latency p99 ms",
        "coordinator CPU %",
        "nats-server CPU %",
        "peer process CPU %",
        "errors",
      ],
      details,
    )
  );
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
