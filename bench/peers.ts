// `npm run bench:peers` (#13): Iris beside a real LLM gateway (Portkey), a direct call and the floor of Iris's shape (a
// bare relay through two processes, bench/peers-floor.ts), all in front of one local OpenAI-compatible upstream that
// answers at once, measured in one run by one client in interleaved rounds:
// non-streamed and streamed sequential latency, streamed TTFT at PEERS_CONCURRENCY (100) concurrent, and the
// servers' CPU per request from /proc. A markdown table on stdout, progress on stderr.
// Sizes: PEERS_ROUNDS (5), PEERS_REQUESTS (sequential requests per target, kind and round: 100),
// PEERS_CONCURRENT_REQUESTS (per target and round at PEERS_CONCURRENCY: 1000), PEERS_WARMUP (concurrent warm-up
// requests per target: 2000). PEERS_PROFILE=dir: after the measured rounds, one more Iris concurrent phase with the
// coordinator and the agent under V8's CPU profiler; profiles, logs and a summary are kept in dir. With
// PEERS_PROFILE_SEQUENTIAL=1 that phase sends its PEERS_CONCURRENT_REQUESTS non-streamed, one at a time instead.
// PEERS_CODE_VERSION names the code measured when it is not a git checkout (e.g. a `git archive` snapshot).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chat, runClosedLoop, type RunResult } from "./peers-client.ts";
import { agentProfiler, profileMarkdown, readProcessProfile } from "./peers-profile.ts";
import { backendSeconds, type DatabaseBackends } from "./peers-processes.ts";
import { firstTokenPathMarkdown, queriesMarkdown, type RequestSpan } from "./peers-queries.ts";
import { report, type Measured, type Sizes } from "./peers-report.ts";
import { startServers, targets, type Servers } from "./peers-servers.ts";
import { cpuSeconds } from "./proc-stats.ts";
import { sleep } from "./stats.ts";

function readSizes(): Sizes {
  // each read as process.env.NAME, so that the configuration reference's test finds the names
  const int = (name: string, value: string | undefined, fallback: number, min: number) => {
    const raw = value?.trim();
    if (!raw) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`${name} must be a whole number from ${min} (got ${JSON.stringify(raw)})`);
    return n;
  };
  const concurrency = int("PEERS_CONCURRENCY", process.env.PEERS_CONCURRENCY, 100, 1);
  if (concurrency > 256) throw new Error("PEERS_CONCURRENCY must be at most 256 (the agent's MAX_CONCURRENT_TASKS)");
  return {
    rounds: int("PEERS_ROUNDS", process.env.PEERS_ROUNDS, 5, 1),
    sequential: int("PEERS_REQUESTS", process.env.PEERS_REQUESTS, 100, 1),
    concurrency,
    concurrent: int("PEERS_CONCURRENT_REQUESTS", process.env.PEERS_CONCURRENT_REQUESTS, 1000, 1),
    warmup: int("PEERS_WARMUP", process.env.PEERS_WARMUP, 2000, 0),
  };
}

const started = performance.now();
const progress = (line: string) =>
  process.stderr.write(`[peers ${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);

function record(m: Measured, result: RunResult): RunResult {
  m.errors += result.errors;
  m.firstError ??= result.firstError;
  return result;
}

/**
 * Waits until the servers (and the database backends) have used under 10 ms of CPU in each of two 200 ms windows
 * and the task journal has written every task as finished (no new rows, none open), at most 20 s: work a target
 * deferred past its last response (Iris's task journal, logs) is counted as that target's, and never runs during
 * the next target's measurement. Resolves with the ms it waited.
 */
async function settle(pids: number[], backends: DatabaseBackends): Promise<number> {
  const total = async () => {
    const db = await backends.snapshot();
    return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) + [...(db?.values() ?? [])].reduce((a, b) => a + b, 0);
  };
  const t0 = performance.now();
  let last = await total();
  let tasks = await backends.tasks();
  for (let quiet = 0; quiet < 2 && performance.now() - t0 < 20_000; ) {
    await sleep(200);
    const now = await total();
    const nowTasks = await backends.tasks();
    const journalDone = nowTasks === undefined || (nowTasks.open === 0 && nowTasks.total === tasks?.total);
    quiet = now - last < 0.01 && journalDone ? quiet + 1 : 0;
    last = now;
    tasks = nowTasks;
  }
  return performance.now() - t0;
}

async function warmUp(measured: Measured[], sizes: Sizes): Promise<void> {
  // every path must answer correctly before anything is timed
  for (const { target } of measured) for (const streamed of [false, true]) await chat(target, streamed);
  progress(`warm-up: ${sizes.warmup} concurrent requests per target, and 200 sequential of each kind`);
  for (const m of measured) {
    for (const streamed of [false, true]) record(m, await runClosedLoop(m.target, streamed, 1, 200));
    record(m, await runClosedLoop(m.target, true, sizes.concurrency, sizes.warmup));
  }
  for (const m of measured) {
    if (m.errors > 0) progress(`${m.target.name}: ${m.errors} warm-up requests failed, the first: ${m.firstError}`);
    m.errors = 0;
    m.firstError = undefined;
  }
}

/** One round: each target in turn, sequential non-streamed, sequential streamed, then streamed concurrent. */
async function runRound(round: number, measured: Measured[], sizes: Sizes, servers: Servers): Promise<void> {
  const serverPids = measured.flatMap((m) => m.pids.map(({ pid }) => pid));
  // the order turns each round, so that no target always runs first (or right after another's burst)
  const order = measured.map((_, i) => measured[(i + round) % measured.length]!);
  progress(`round ${round + 1}/${sizes.rounds}: ${order.map((m) => m.target.name).join(", ")}`);
  for (const streamed of [false, true]) {
    for (const m of order) {
      await runClosedLoop(m.target, streamed, 1, 10); // the pool's socket, the JIT: not measured
      await settle(serverPids, servers.backends);
      const result = record(m, await runClosedLoop(m.target, streamed, 1, sizes.sequential));
      for (const timing of result.timings) {
        if (!streamed) m.wholeTotals.push(timing.totalMs);
        else {
          m.streamedTtfts.push(timing.ttftMs);
          m.streamedReads += timing.reads;
        }
      }
    }
  }
  for (const m of order) {
    await runClosedLoop(m.target, true, sizes.concurrency, sizes.concurrency); // refills the pool: not measured
    await settle(serverPids, servers.backends);
    const db0 = await servers.backends.snapshot();
    const cpu0 = m.pids.map(({ pid }) => cpuSeconds(pid));
    const upstream0 = cpuSeconds(servers.upstream.pid);
    const client0 = process.cpuUsage();
    const result = record(m, await runClosedLoop(m.target, true, sizes.concurrency, sizes.concurrent));
    const client = process.cpuUsage(client0);
    m.settleMs += await settle(serverPids, servers.backends);
    m.clientCpuS += (client.user + client.system) / 1e6;
    m.upstreamCpuS += cpuSeconds(servers.upstream.pid) - upstream0;
    for (const [i, { name, pid }] of m.pids.entries()) m.cpu.set(name, m.cpu.get(name)! + cpuSeconds(pid) - cpu0[i]!);
    const db = backendSeconds(db0, await servers.backends.snapshot());
    m.databaseCpuS = db === undefined || m.databaseCpuS === undefined ? undefined : m.databaseCpuS + db;
    for (const timing of result.timings) m.concurrentTtfts.push(timing.ttftMs);
    m.concurrentWallMs += result.wallMs;
  }
}

/**
 * PEERS_PROFILE: one more Iris concurrent phase with the coordinator and the agent under the CPU profiler (and
 * the coordinator's SQL recorded), then streamed requests one at a time with the SQL recorded; the summary.
 */
async function profileIris(iris: Measured, sizes: Sizes, servers: Servers, profileDir: string): Promise<string> {
  const { coordinator, agent, backends } = servers;
  const serverPids = iris.pids.map(({ pid }) => pid);
  const agentProfile = agentProfiler(agent.pid, join(profileDir, "agent"));
  // one at a time, every fixed cost (a wake-up, a transaction) is paid by one request alone
  const sequential = process.env.PEERS_PROFILE_SEQUENTIAL === "1";
  const [streamed, concurrency] = sequential ? [false, 1] : [true, sizes.concurrency];
  const phase = sequential ? "non-streamed requests one at a time" : `streamed requests at ${concurrency} concurrent`;
  progress(`profiling Iris: ${sizes.concurrent} ${phase}`);
  await runClosedLoop(iris.target, true, sizes.concurrency, sizes.concurrency);
  await settle(serverPids, backends);
  await coordinator.startProfile();
  await agentProfile.start();
  const cpu0 = [cpuSeconds(coordinator.pid), cpuSeconds(agent.pid)];
  const result = await runClosedLoop(iris.target, streamed, concurrency, sizes.concurrent);
  await settle(serverPids, backends); // the deferred writes belong in the profile too
  const requests = Math.max(1, result.timings.length);
  const cpuMs = [cpuSeconds(coordinator.pid), cpuSeconds(agent.pid)].map((s, i) => (1000 * (s - cpu0[i]!)) / requests);
  const files = { coordinator: await coordinator.stopProfile(), agent: await agentProfile.stop() };

  progress(`recording the coordinator's statements: ${sizes.sequential} streamed requests one at a time`);
  await coordinator.startProfile();
  const spans: RequestSpan[] = [];
  for (let i = 0; i < sizes.sequential; i++) {
    const start = performance.timeOrigin + performance.now();
    const timing = await chat(iris.target, true).catch(
      (err: unknown) => void progress(`a profiled request failed: ${String(err)}`),
    );
    if (timing) spans.push({ start, first: start + timing.ttftMs, end: start + timing.totalMs });
  }
  await settle(serverPids, backends);
  await coordinator.stopProfile();
  return (
    `### Where Iris's CPU goes (CPU profiles of one more phase: ${requests} ${phase}, ${result.errors} ` +
    `errors)\n\n` +
    `Profiles: ${files.coordinator}, ${files.agent} (V8 sampling ` +
    `every ${process.env.BENCH_PROFILE_INTERVAL_US ?? 1000} µs, ` +
    "started and stopped around the phase by SIGUSR2, bench/profile-hook.ts; this phase is not in the table above; " +
    "lines through the source maps that bench/peers-source-maps.ts saved). Samples are wall-clock on a shared " +
    "machine, so the shares are the split of the work, and the µs columns are those shares of the CPU /proc measured " +
    "in the window.\n\n" +
    profileMarkdown([
      readProcessProfile("coordinator", files.coordinator, requests, cpuMs[0]!, join(profileDir, "sourcemaps.json")),
      readProcessProfile("agent", files.agent, requests, cpuMs[1]!, join(profileDir, "agent", "sourcemaps.json")),
    ]) +
    queriesMarkdown(join(profileDir, "queries-1.json"), requests, `${phase}, the profiled phase`) +
    queriesMarkdown(join(profileDir, "queries-2.json"), spans.length, "streamed requests one at a time") +
    firstTokenPathMarkdown(join(profileDir, "queries-2.json"), spans)
  );
}

export async function runPeersBench(): Promise<void> {
  const sizes = readSizes();
  const loadAtStart = loadavg();
  const profileDir = process.env.PEERS_PROFILE?.trim() ? resolve(process.env.PEERS_PROFILE.trim()) : undefined;
  const workDir = profileDir ?? mkdtempSync(join(tmpdir(), "iris-peers-"));
  if (profileDir) mkdirSync(join(profileDir, "agent"), { recursive: true });
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async () => {
    for (const task of cleanups.reverse().splice(0))
      await task().catch((err: unknown) => progress(`cleanup: ${String(err)}`));
    if (!profileDir) rmSync(workDir, { recursive: true, force: true });
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => void cleanUp().then(() => process.exit(130)));
  try {
    progress("database, upstream, Portkey, coordinator, agent");
    const servers = await startServers(sizes, workDir, profileDir, cleanups);
    const measured = targets(servers, sizes.concurrency);
    await warmUp(measured, sizes);
    for (let round = 0; round < sizes.rounds; round++) await runRound(round, measured, sizes, servers);
    const profile = profileDir ? await profileIris(measured[2]!, sizes, servers, profileDir) : "";
    console.log(report(sizes, measured, servers.database.label, profileDir, loadAtStart));
    if (profile) console.log(`\n${profile}\n`);
  } finally {
    await cleanUp();
  }
  progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runPeersBench().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
