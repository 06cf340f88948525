// The peers benchmark's other processes: the upstream (bench/peers-upstream.ts) and Portkey's gateway as children,
// and the PostgreSQL backends serving Iris's database, whose CPU is read from /proc like the children's.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { cpuSeconds } from "./proc-stats.ts";
import { sleep } from "./stats.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

export interface ServerProcess {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

function stopper(child: ChildProcess): () => Promise<void> {
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };
}

/** The upstream in its own process; resolves once it listens. */
export function startUpstreamProcess(): Promise<ServerProcess> {
  return startPortPrinter(["bench/peers-upstream.ts"], "the upstream");
}

/**
 * The bare two-process relay in front of the upstream (bench/peers-floor.ts): the floor of Iris's shape. Resolves
 * once the front is connected to the back and listens.
 */
export async function startFloorProcesses(
  upstreamPort: number,
  /** Node options and environment for each of the two, e.g. bench/peers-trace-hook.ts preloaded. */
  extra: (side: "front" | "back") => { args: string[]; env: Record<string, string> } = () => ({ args: [], env: {} }),
  /** The pair's script: the floor, or bench/peers-lean.ts (the same two roles, with Iris's irreducible work). */
  script = "bench/peers-floor.ts",
): Promise<{ front: ServerProcess; back: ServerProcess }> {
  const side = (name: "front" | "back", arg: string) => {
    const { args, env } = extra(name);
    return startPortPrinter([...args, script, name, arg], `${script}'s ${name}`, env);
  };
  const back = await side("back", String(upstreamPort));
  try {
    return { back, front: await side("front", String(back.port)) };
  } catch (err) {
    await back.stop();
    throw err;
  }
}

/** A child that prints {"port": N} on stdout once it serves. */
async function startPortPrinter(
  args: string[],
  what: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  // Node strips the file's types itself: no loader in the child's process
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not listen within 10 s`)), 10_000);
    createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once("exit", (code) => reject(new Error(`${what} exited with ${code}`)));
  });
  return { pid: child.pid!, port, stop: stopper(child) };
}

/** The benchmark agent's environment: the OpenAI-compatible backend on the upstream, logs to a file of its own. */
export function peersAgentEnv(agent: {
  name: string;
  coordinatorUrl: string;
  accountKey: string;
  upstreamPort: number;
  workDir: string;
}): Record<string, string> {
  return {
    COORDINATOR_URL: agent.coordinatorUrl,
    IRIS_ACCOUNT_KEY: agent.accountKey,
    NODE_ID: agent.name,
    IRIS_BACKEND: "openai-compatible",
    BACKEND_URL: `http://127.0.0.1:${agent.upstreamPort}/v1`,
    BENCHMARK_TOKENS: "16",
    LOG_LEVEL: "info",
    NODE_KEY_PATH: join(agent.workDir, `${agent.name}.key`),
    IRIS_LOG_FILE: join(agent.workDir, `${agent.name}.log`),
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/", method: "GET", timeout: 1_000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once("error", () => resolve(false));
    req.once("timeout", () => req.destroy());
    req.end();
  });
}

/**
 * Portkey's gateway as published (`build/start-server.js --headless`), with the fetch wrapper preloaded
 * (bench/peers-portkey-fetch.ts) and the orphan guard; its console output goes to `<workDir>/portkey.log`.
 */
export async function startPortkeyProcess(workDir: string): Promise<ServerProcess & { logFile: string }> {
  const port = await freePort();
  const logFile = join(workDir, "portkey.log");
  const fd = openSync(logFile, "w");
  const args = [
    "--import",
    "./bench/peers-portkey-fetch.ts",
    "--import",
    "./bench/orphan-guard.ts",
    "node_modules/@portkey-ai/gateway/build/start-server.js",
    "--headless",
    `--port=${port}`,
  ];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const stop = stopper(child);
  for (let waited = 0; !(await answers(port)); waited += 100) {
    if (child.exitCode !== null)
      throw new Error(`Portkey exited with ${child.exitCode}:\n${readFileSync(logFile, "utf8").slice(-2000)}`);
    if (waited > 30_000) {
      await stop();
      throw new Error(`Portkey did not answer within 30 s:\n${readFileSync(logFile, "utf8").slice(-2000)}`);
    }
    await sleep(100);
  }
  return { pid: child.pid!, port, logFile, stop };
}

/**
 * The PostgreSQL server processes serving one database's clients (the coordinator's pool; not autovacuum, which
 * runs when it likes and would land in any target's phase). Their CPU is a side cost of Iris; it is readable
 * where the server runs on this machine, else `snapshot()` gives undefined.
 */
export interface DatabaseBackends {
  /** CPU seconds of each backend of the database so far, by pid (the benchmark's own connection left out). */
  snapshot(): Promise<Map<number, number> | undefined>;
  /**
   * How many task records the coordinator has written, and how many of them are not finished: the task journal
   * writes behind the token path, so this is how the benchmark sees that Iris's deferred work is done.
   */
  tasks(): Promise<{ total: number; open: number } | undefined>;
  close(): Promise<void>;
}

/** CPU seconds the backends used between two snapshots; one that connected in between counts from 0. */
export function backendSeconds(
  before: Map<number, number> | undefined,
  after: Map<number, number> | undefined,
): number | undefined {
  if (!before || !after) return undefined;
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}

export async function watchDatabaseBackends(databaseUrl: string | undefined): Promise<DatabaseBackends> {
  if (!databaseUrl) return { snapshot: async () => undefined, tasks: async () => undefined, close: async () => {} };
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  // one connection to Iris's database itself, left out of the backends it measures
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const own = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
  return {
    async snapshot() {
      const { rows } = await client.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2 AND backend_type = 'client backend'",
        [name, own],
      );
      const seconds = new Map<number, number>();
      for (const { pid } of rows) {
        try {
          seconds.set(pid, cpuSeconds(pid));
        } catch {
          return undefined; // not on this machine (or gone): no figure rather than a wrong one
        }
      }
      return seconds;
    },
    async tasks() {
      const { rows } = await client.query<{ total: number; open: number }>(
        "SELECT count(*)::int AS total, (count(*) FILTER (WHERE completed_at IS NULL))::int AS open FROM tasks",
      );
      return rows[0];
    },
    close: () => client.end(),
  };
}
