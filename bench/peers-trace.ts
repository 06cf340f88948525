// Where one request at a time spends its time, step by step across processes: Iris (client → coordinator → agent
// → upstream and back) beside the two-process floor (client → front → back → upstream and back), non-streamed, one
// request at a time. Each server process preloads bench/peers-trace-hook.ts, which stamps every HTTP/1.1 and HTTP/2
// read and write with the machine's monotonic clock and its main thread's run-queue delay so far; this lays each
// request's stamps end to end and prints the median of each step, and how long within it, on average, the process
// that ends the step waited for a core (a wake-up's wait lies in the step the wake-up ends: a slow leg between two
// processes is either that or the kernel's and Node's work). `npm run bench:peers-trace` (PEERS_TRACE_REQUESTS=N,
// default 1000 a target; PEERS_TRACE_LEAN=1 adds bench/peers-lean.ts, the floor doing Iris's irreducible work;
// PEERS_TRACE_NO_RECORDS=1 adds Iris with its records silenced, bench/peers-no-records.ts).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBenchAgent } from "./agent-process.ts";
import { startCoordinatorProcess } from "./coordinator-process.ts";
import { createBenchDatabase } from "./database.ts";
import { chat, createTarget, type Target } from "./peers-client.ts";
import {
  backendSeconds,
  peersAgentEnv,
  startFloorProcesses,
  startUpstreamProcess,
  watchDatabaseBackends,
  type DatabaseBackends,
} from "./peers-processes.ts";
import { runDelayNs } from "./peers-trace-hook.ts";
import { cpuSeconds } from "./proc-stats.ts";
import { ascending, fixed, markdownTable, percentile, sleep } from "./stats.ts";

const HOOK = "./bench/peers-trace-hook.ts";
/** PEERS_TRACE_PAUSE_MS: a pause after each request, so that work left after an answer cannot delay the next one. */
const pauseMs = Number(process.env.PEERS_TRACE_PAUSE_MS ?? 0);
/**
 * PEERS_TRACE_LEAN=1: a third target, bench/peers-lean.ts: the floor's two processes doing only the work Iris's design
 * asks of each request (its rules, key, classification, sealing, protobuf), with Iris's own functions.
 */
const lean = process.env.PEERS_TRACE_LEAN === "1";
/** PEERS_TRACE_NO_RECORDS=1: one more target, Iris with its task journal and reputation recorder silenced. */
const noRecords = process.env.PEERS_TRACE_NO_RECORDS === "1";
/** A step, when (CLOCK_MONOTONIC ns) and how long the stamping process's main thread has waited for a core (ns). */
type Stamp = [string, number, number];
type Window = Traced["windows"][number];

interface Traced {
  target: Target;
  /** [client send, client end, the client's wait for a core in between] of each request, ns */
  windows: [number, number, number][];
  /** the process nearer the client, then the one nearer the upstream */
  files: [string, string];
  pids: [number, number];
  /** CPU seconds of each process over the measured requests */
  cpu: number[];
  /** of it, its main thread's (the one that serves requests; the rest is V8's and libuv's helper threads) */
  mainCpu: number[];
  /** CPU seconds of the coordinator's PostgreSQL backends over them (where readable) */
  databaseCpu: number | undefined;
}

/** A target through `url` whose two server processes stamp into `files`. */
function traced(
  name: string,
  url: string,
  headers: Record<string, string>,
  files: [string, string],
  pids: [number, number],
): Traced {
  return measuredFromNow({ target: createTarget(name, url, headers, 1), files, pids } as Traced);
}

/** Forgets what `traced` measured so far (after the warm-up): its windows and CPU start again from zero. */
function measuredFromNow(traced: Traced): Traced {
  return Object.assign(traced, { windows: [], cpu: [0, 0], mainCpu: [0, 0], databaseCpu: 0 });
}

function readStamps(file: string): Stamp[] {
  const raw = JSON.parse(readFileSync(file, "utf8")) as [string, string, number][];
  return raw.map(([step, ns, delayNs]) => [step, Number(BigInt(ns)), delayNs] as Stamp).sort((a, b) => a[1] - b[1]);
}

/** The index of the first stamp at or after `t` (stamps are in time order). */
function lowerBound(stamps: Stamp[], t: number): number {
  let lo = 0;
  let hi = stamps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (stamps[mid]![1] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first stamp named `step` at or after `from` (and before `to`), by binary search then a scan. */
function first(stamps: Stamp[], step: string, from: number, to: number): Stamp | undefined {
  for (let i = lowerBound(stamps, from); i < stamps.length && stamps[i]![1] <= to; i++)
    if (stamps[i]![0] === step) return stamps[i];
  return undefined;
}

/** The last stamp before `to`, any step. */
function last(stamps: Stamp[], to: number): Stamp | undefined {
  return stamps[lowerBound(stamps, to) - 1];
}

const STEPS = [
  "client → first process (the request read)",
  "first process: request → message to the second written",
  "the hop down (HTTP/2)",
  "second process: message → upstream request sent",
  "the upstream answers (first read)",
  "second process: upstream's answer → message up written",
  "the hop up (HTTP/2)",
  "first process: message → response ended",
  "response → client has it all",
] as const;

/**
 * Each request's steps in ms, and the time in ms within each that the process which ends it (the client, this
 * process, for the last: its wait over the whole request) spent runnable but waiting for a core; undefined when a
 * stamp is missing (a heartbeat's write is not mistaken: firsts).
 */
function steps(near: Stamp[], far: Stamp[], [c0, c1, clientWait]: Window): [number[], number[]] | undefined {
  const httpIn = first(near, "http.in", c0, c1);
  const down = httpIn && first(near, "h2.write", httpIn[1], c1);
  const farRead = down && first(far, "h2.read", down[1], c1);
  const upSend = farRead && first(far, "client.send", farRead[1], c1);
  const upRead = upSend && first(far, "client.read", upSend[1], c1);
  const upWrite = upRead && first(far, "h2.write", upRead[1], c1);
  const nearRead = upWrite && first(near, "h2.read", upWrite[1], c1);
  const out = nearRead && first(near, "http.out.end", nearRead[1], c1);
  const nearBefore = last(near, c0);
  const farBefore = last(far, c0);
  if (!out || !nearBefore || !farBefore) return undefined;
  const marks = [c0, httpIn![1], down![1], farRead![1], upSend![1], upRead![1], upWrite![1], nearRead![1], out[1], c1];
  // the waits each step ends with, from the same process's previous stamp on the path (its last before the request
  // for its first): a wake-up's wait falls in the step it ends
  const waited = (from: Stamp, to: Stamp) => (to[2] - from[2]) / 1e6;
  const waits = [
    waited(nearBefore, httpIn!),
    waited(httpIn!, down!),
    waited(farBefore, farRead!),
    waited(farRead!, upSend!),
    waited(upSend!, upRead!),
    waited(upRead!, upWrite!),
    waited(down!, nearRead!),
    waited(nearRead!, out),
    clientWait / 1e6,
  ];
  return [marks.slice(1).map((t, i) => (t - marks[i]!) / 1e6), waits];
}

async function runSequential(traced: Traced, count: number, backends: DatabaseBackends): Promise<void> {
  const cpu0 = traced.pids.map((pid) => cpuSeconds(pid));
  const main0 = traced.pids.map((pid) => cpuSeconds(pid, pid));
  const db0 = await backends.snapshot();
  for (let i = 0; i < count; i++) {
    const start = Number(process.hrtime.bigint());
    const delay = runDelayNs();
    await chat(traced.target, false);
    traced.windows.push([start, Number(process.hrtime.bigint()), runDelayNs() - delay]);
    if (pauseMs > 0) await sleep(pauseMs);
  }
  for (const [i, pid] of traced.pids.entries()) {
    traced.cpu[i]! += cpuSeconds(pid) - cpu0[i]!;
    traced.mainCpu[i]! += cpuSeconds(pid, pid) - main0[i]!;
  }
  const db = backendSeconds(db0, await backends.snapshot());
  traced.databaseCpu = db === undefined || traced.databaseCpu === undefined ? undefined : traced.databaseCpu + db;
}

async function collect(traced: Traced): Promise<[Stamp[], Stamp[]]> {
  for (const pid of traced.pids) process.kill(pid, "SIGUSR2");
  await sleep(500);
  return [readStamps(traced.files[0]), readStamps(traced.files[1])];
}

export async function runPeersTrace(): Promise<void> {
  const requests = Number(process.env.PEERS_TRACE_REQUESTS ?? 1000);
  const workDir = mkdtempSync(join(tmpdir(), "iris-peers-trace-"));
  const file = (name: string) => join(workDir, `${name}.trace.json`);
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const database = await createBenchDatabase(process.env.DATABASE_URL?.trim() || undefined);
    cleanups.push(() => database.drop());
    const upstream = await startUpstreamProcess();
    cleanups.push(() => upstream.stop());
    const floor = await startFloorProcesses(upstream.port, (side) => ({
      args: ["--import", HOOK],
      env: { PEERS_TRACE_FILE: file(side) },
    }));
    cleanups.push(() => Promise.all([floor.front.stop(), floor.back.stop()]));
    /** A coordinator and its agent, stamping into `<name>-coordinator` and `<name>-agent`; `preload`: more hooks. */
    const startIris = async (label: string, name: string, preload: string[] = []) => {
      const coordinator = await startCoordinatorProcess({
        env: { ...database.env, PEERS_TRACE_FILE: file(`${name}-coordinator`) },
        workDir,
        name: `${name}-coordinator`,
        preload: [HOOK, ...preload],
      });
      cleanups.push(() => coordinator.stop());
      const agent = startBenchAgent({
        ...peersAgentEnv({
          name: `${name}-agent`,
          coordinatorUrl: coordinator.url,
          accountKey: database.accountKey,
          upstreamPort: upstream.port,
          workDir,
        }),
        NODE_OPTIONS: `--import ${HOOK}`,
        PEERS_TRACE_FILE: file(`${name}-agent`),
      });
      cleanups.push(() => agent.stop());
      await agent.registered;
      return traced(
        label,
        `${coordinator.url}/v1/chat/completions`,
        auth,
        [file(`${name}-coordinator`), file(`${name}-agent`)],
        [coordinator.pid, agent.pid],
      );
    };
    const auth = { authorization: `Bearer ${database.accountKey}` };
    const iris = await startIris("Iris", "iris");
    const backends = await watchDatabaseBackends(database.env.DATABASE_URL);
    cleanups.push(() => backends.close());
    const floorTarget = traced(
      "two-process floor",
      `http://127.0.0.1:${floor.front.port}/v1/chat/completions`,
      {},
      [file("front"), file("back")],
      [floor.front.pid, floor.back.pid],
    );
    const targets = [iris, floorTarget];
    // the same coordinator with its records silenced (bench/peers-no-records.ts): what the records cost
    if (noRecords) targets.push(await startIris("Iris without records", "quiet", ["./bench/peers-no-records.ts"]));
    if (lean) {
      // the floor's pair doing Iris's irreducible work with Iris's functions (bench/peers-lean.ts, under tsx)
      const pair = await startFloorProcesses(
        upstream.port,
        (side) => ({
          args: ["--import", "tsx", "--import", HOOK],
          // PEERS_LEAN_RECORDS=1: the front writes each request's records too, to the benchmark's database
          env: { PEERS_TRACE_FILE: file(`lean-${side}`), DATABASE_URL: database.env.DATABASE_URL! },
        }),
        "bench/peers-lean.ts",
      );
      cleanups.push(() => Promise.all([pair.front.stop(), pair.back.stop()]));
      targets.push(
        traced(
          "lean",
          `http://127.0.0.1:${pair.front.port}/v1/chat/completions`,
          auth,
          [file("lean-front"), file("lean-back")],
          [pair.front.pid, pair.back.pid],
        ),
      );
    }
    for (const t of targets) await runSequential(t, 500, backends); // the JIT, the pools: not measured
    for (const t of targets) await collect(t);
    for (const t of targets) measuredFromNow(t);
    // interleaved halves, so that neither target has the quieter part of the run to itself
    for (let half = 0; half < 2; half++)
      for (const t of targets) await runSequential(t, Math.ceil(requests / 2), backends);
    const rows: string[][] = STEPS.map((s) => [s]);
    const totals: string[] = ["whole request (client's clock)"];
    const found: string[] = ["requests with every stamp"];
    const cpu: string[][] = [
      ["CPU per request, first process (of it, its main thread's)"],
      ["CPU per request, second process (of it, its main thread's)"],
      ["CPU per request, the coordinator's PostgreSQL backends"],
    ];
    for (const t of targets) {
      const [near, far] = await collect(t);
      const each = t.windows.map((w) => steps(near, far, w)).filter((s) => s !== undefined);
      const meanWait = (i: number) => each.reduce((sum, [, w]) => sum + w[i]!, 0) / each.length;
      for (const [i, row] of rows.entries()) {
        const wait = meanWait(i);
        row.push(fixed(percentile(ascending(each.map(([s]) => s[i]!)), 50), 3), fixed(wait, 3));
      }
      const waited = STEPS.reduce((sum, _, i) => sum + meanWait(i), 0);
      totals.push(fixed(percentile(ascending(t.windows.map(([a, b]) => (b - a) / 1e6)), 50), 3), fixed(waited, 3));
      found.push(`${each.length} of ${t.windows.length}`, "");
      const perRequest = (seconds: number) => fixed((1000 * seconds) / t.windows.length, 3);
      for (const [i, seconds] of t.cpu.entries())
        cpu[i]!.push(`${perRequest(seconds)} (${perRequest(t.mainCpu[i]!)})`, "");
      cpu[2]!.push(t.databaseCpu === undefined ? "n/a" : perRequest(t.databaseCpu), "");
    }
    process.stdout.write(
      `## One request at a time, step by step (non-streamed; ms)\n\n` +
        "Each step's p50, and the mean time within it that the process which ends it waited, runnable, for a core " +
        "(its main thread's run-queue delay from /proc/thread-self/schedstat; a wake-up's wait falls in the step it " +
        "ends; for the last step, the client's, this process's, over the whole request).\n\n" +
        markdownTable(
          ["step", ...targets.flatMap((t) => [`${t.target.name} p50`, `${t.target.name}: waiting for a core`])],
          [...rows, totals, ...cpu, found],
          ["l", ...targets.flatMap(() => ["r", "r"] as const)],
        ) +
        "\n",
    );
  } finally {
    for (const task of cleanups.reverse()) await task().catch(() => {});
    rmSync(workDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runPeersTrace();
