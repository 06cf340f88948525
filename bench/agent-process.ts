// Runs the real agent (agent/main.ts) as a child process for the benchmarks: like test/support/agent-process.ts,
// but it stops with the benchmark (orphan guard) and keeps no log lines beyond the one it waits for.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

export interface BenchAgent {
  child: ChildProcess;
  pid: number;
  /** Resolves when the agent has registered with the coordinator. */
  registered: Promise<void>;
  stop(): Promise<void>;
}

export function startBenchAgent(env: Record<string, string>): BenchAgent {
  const clean = { ...process.env };
  for (const name of [
    "IRIS_ACCOUNT_KEY",
    "NODE_ID",
    "IRIS_MODEL",
    "IRIS_BACKEND",
    "BACKEND_URL",
    "DATABASE_URL",
    "LOG_LEVEL",
  ])
    delete clean[name];
  const child = spawn(process.execPath, ["--import", "tsx", "--import", "./bench/orphan-guard.ts", "agent/main.ts"], {
    cwd: root,
    env: { ...clean, IRIS_THREADS: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const registered = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the agent did not register in 60 s: ${stderr}`)), 60_000);
    // every line is read (so the pipe never fills) and dropped once the agent has registered
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.includes('"registered with the coordinator"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the agent exited with ${code}: ${stderr}`));
    });
  });
  registered.catch(() => {});
  return {
    child,
    pid: child.pid!,
    registered,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
