// The peers benchmark's servers and targets: the database, the upstream, Portkey, the two-process floor, the
// coordinator and the agent started for one run, and the four targets the client measures through them.
import { join } from "node:path";
import { startBenchAgent, type BenchAgent } from "./agent-process.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "./coordinator-process.ts";
import { createBenchDatabase } from "./database.ts";
import { createTarget } from "./peers-client.ts";
import {
  startPortkeyProcess,
  startFloorProcesses,
  peersAgentEnv,
  startUpstreamProcess,
  watchDatabaseBackends,
  type DatabaseBackends,
  type ServerProcess,
} from "./peers-processes.ts";
import type { Measured, Sizes } from "./peers-report.ts";

export interface Servers {
  database: Awaited<ReturnType<typeof createBenchDatabase>>;
  upstream: ServerProcess;
  portkey: ServerProcess;
  floor: { front: ServerProcess; back: ServerProcess };
  coordinator: CoordinatorProcess;
  agent: BenchAgent;
  backends: DatabaseBackends;
}

/** Everything the benchmark measures; each pushes its own stop onto `cleanups`. */
export async function startServers(
  sizes: Sizes,
  workDir: string,
  profileDir: string | undefined,
  cleanups: (() => Promise<unknown>)[],
): Promise<Servers> {
  const database = await createBenchDatabase(process.env.DATABASE_URL?.trim() || undefined);
  cleanups.push(() => database.drop());
  const upstream = await startUpstreamProcess();
  cleanups.push(() => upstream.stop());
  const portkey = await startPortkeyProcess(workDir);
  cleanups.push(() => portkey.stop());
  const floor = await startFloorProcesses(upstream.port);
  cleanups.push(() => Promise.all([floor.front.stop(), floor.back.stop()]));
  const coordinator = await startCoordinatorProcess({
    env: database.env,
    workDir,
    name: "peers-coordinator",
    profile: profileDir !== undefined,
    preload: profileDir ? ["./bench/peers-query-count.ts", "./bench/peers-source-maps.ts"] : [],
  });
  cleanups.push(() => coordinator.stop());
  const agent = startBenchAgent({
    ...peersAgentEnv({
      name: "peers-agent",
      coordinatorUrl: coordinator.url,
      accountKey: database.accountKey,
      upstreamPort: upstream.port,
      workDir,
    }),
    MAX_CONCURRENT_TASKS: String(sizes.concurrency),
    ...(profileDir
      ? {
          NODE_OPTIONS: "--import ./bench/profile-hook.ts --import ./bench/peers-source-maps.ts",
          BENCH_PROFILE_DIR: join(profileDir, "agent"),
        }
      : {}),
  });
  cleanups.push(() => agent.stop());
  await agent.registered;
  const backends = await watchDatabaseBackends(database.env.DATABASE_URL);
  cleanups.push(() => backends.close());
  return { database, upstream, portkey, floor, coordinator, agent, backends };
}

/**
 * direct, Portkey, Iris and the bare two-process relay (the floor of Iris's shape): one client pool each, and the
 * server processes whose CPU is theirs.
 */
export function targets({ upstream, portkey, floor, coordinator, agent, database }: Servers, pool: number): Measured[] {
  const upstreamApi = `http://127.0.0.1:${upstream.port}/v1`;
  const portkeyHeaders = {
    authorization: "Bearer sk-bench",
    "x-portkey-provider": "openai",
    "x-portkey-custom-host": upstreamApi,
  };
  return [
    {
      target: createTarget("direct", `${upstreamApi}/chat/completions`, { authorization: "Bearer sk-bench" }, pool),
      pids: [],
    },
    {
      target: createTarget("Portkey", `http://127.0.0.1:${portkey.port}/v1/chat/completions`, portkeyHeaders, pool),
      pids: [{ name: "Portkey", pid: portkey.pid }],
    },
    {
      target: createTarget(
        "Iris",
        `${coordinator.url}/v1/chat/completions`,
        { authorization: `Bearer ${database.accountKey}` },
        pool,
      ),
      pids: [
        { name: "coordinator", pid: coordinator.pid },
        { name: "agent", pid: agent.pid },
      ],
    },
    {
      target: createTarget("two-process floor", `http://127.0.0.1:${floor.front.port}/v1/chat/completions`, {}, pool),
      pids: [
        { name: "front", pid: floor.front.pid },
        { name: "back", pid: floor.back.pid },
      ],
    },
  ].map((m) => ({
    ...m,
    wholeTotals: [],
    streamedTtfts: [],
    streamedReads: 0,
    concurrentTtfts: [],
    concurrentWallMs: 0,
    settleMs: 0,
    cpu: new Map(m.pids.map(({ name }) => [name, 0])),
    clientCpuS: 0,
    upstreamCpuS: 0,
    databaseCpuS: 0,
    errors: 0,
  }));
}
