// Runs the real coordinator (coordinator/main.ts) as a separate child process for the benchmarks, so load
// generators and clients never share its event loop; its logs go to a file, its CPU and memory come from /proc.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, openSync, closeSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sleep } from "./stats.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

export interface CoordinatorProcess {
  child: ChildProcess;
  pid: number;
  /** http://127.0.0.1:PORT */
  url: string;
  logFile: string;
  /**
   * Starts the CPU profiler (profile-hook.ts) and resolves once it runs; `stopProfile()` resolves with the .cpuprofile
   * path.
   */
  startProfile(): Promise<void>;
  stopProfile(): Promise<string>;
  /** SIGTERM (graceful shutdown), SIGKILL if it takes longer than `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface CoordinatorOptions {
  /** Database environment (DATABASE_URL or DATA_DIR) and any other overrides. */
  env: Record<string, string>;
  /** Where this run's log file (and profiles, when profiling) go. */
  workDir: string;
  name: string;
  /** Preload the SIGUSR2 profiler hook. */
  profile?: boolean;
  /** More modules to preload (`--import`), e.g. ./bench/pglite-main-thread.ts. */
  preload?: string[];
}

async function waitForFile(file: string, failure: string): Promise<void> {
  for (let waited = 0; !existsSync(file); waited += 50) {
    if (waited > 30_000) throw new Error(`the coordinator ${failure} within 30 s`);
    await sleep(50);
  }
}

export async function startCoordinatorProcess(options: CoordinatorOptions): Promise<CoordinatorProcess> {
  const logFile = join(options.workDir, `${options.name}.log`);
  const fd = openSync(logFile, "w");
  const clean = { ...process.env };
  for (const name of ["DATABASE_URL", "DATA_DIR", "PORT", "HOST", "LOG_LEVEL"]) delete clean[name];
  const hooks = [
    "./bench/orphan-guard.ts",
    ...(options.profile ? ["./bench/profile-hook.ts"] : []),
    ...(options.preload ?? []),
  ];
  const args = ["--import", "tsx", ...hooks.flatMap((hook) => ["--import", hook]), "coordinator/main.ts"];
  // node --import tsx: one process, so its pid is the coordinator itself (the tsx CLI would add a parent)
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: {
      ...clean,
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: process.env.BENCH_COORDINATOR_LOG_LEVEL ?? "info",
      COORDINATOR_PRIVATE_KEY_PATH: join(options.workDir, "coordinator.key"),
      COORDINATOR_INSTANCE: `bench-${options.name}`,
      // every load node and client connects from 127.0.0.1: no per-address connection cap
      MAX_CONNECTIONS_PER_ADDRESS: "0",
      ...(options.profile ? { BENCH_PROFILE_DIR: options.workDir } : {}),
      // e.g. "--max-semi-space-size=64", to try V8 flags on the coordinator alone
      ...(process.env.BENCH_COORDINATOR_NODE_OPTIONS
        ? { NODE_OPTIONS: process.env.BENCH_COORDINATOR_NODE_OPTIONS }
        : {}),
      ...options.env,
    },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) => child.once("exit", (code) => ((exitCode = code), resolve())));

  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  const deadline = Date.now() + 60_000;
  let port: number | undefined;
  while (port === undefined) {
    if (exitCode !== undefined)
      throw new Error(`coordinator exited with ${exitCode} before listening:\n${log().slice(-3000)}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`coordinator did not listen within 60 s:\n${log().slice(-3000)}`);
    }
    for (const line of log().split("\n")) {
      if (!line.includes("coordinator listening")) continue;
      port = (JSON.parse(line) as { port: number }).port;
    }
    if (port === undefined) await sleep(50);
  }

  let profiles = 0;
  return {
    child,
    pid: child.pid!,
    url: `http://127.0.0.1:${port}`,
    logFile,
    async startProfile() {
      child.kill("SIGUSR2");
      await waitForFile(join(options.workDir, `coordinator-${profiles + 1}.started`), "did not start its CPU profiler");
    },
    async stopProfile() {
      const file = join(options.workDir, `coordinator-${++profiles}.cpuprofile`);
      child.kill("SIGUSR2");
      await waitForFile(file, "wrote no CPU profile");
      return file;
    },
    async stop(timeoutMs = 15_000) {
      if (exitCode !== undefined) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
