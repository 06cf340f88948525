// Runs the real `iris-agent` (agent/main.ts) as a child process for end-to-end tests, and reads its JSON logs.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** Resolves when a log line matches, rejects if the process exits first. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

export function startAgent(env: Record<string, string>): AgentProcess {
  const clean = { ...process.env };
  for (const name of ["IRIS_ACCOUNT_KEY", "NODE_ID", "IRIS_MODEL", "IRIS_BACKEND", "BACKEND_URL", "DATABASE_URL"]) delete clean[name];
  // node --import tsx: one process, so a SIGKILL kills the agent itself (the tsx CLI would leave its child running)
  const child = spawn(process.execPath, ["--import", "tsx", "agent/main.ts"], {
    cwd: root,
    env: { ...clean, IRIS_THREADS: "1", BENCHMARK_TOKENS: "16", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      return; // not a log line
    }
    for (const wake of waiters) wake();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    logs,
    stderr: () => stderr,
    exited,
    waitForLog(predicate, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = logs.find(predicate);
          if (found) finish(() => resolve(found));
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`no matching agent log line in ${timeoutMs} ms; stderr: ${stderr}`))), timeoutMs);
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        void exited.then((code) => finish(() => reject(new Error(`agent exited with ${code}; stderr: ${stderr}`))));
        check();
      });
    },
    kill(signal: NodeJS.Signals = "SIGKILL") {
      child.kill(signal);
    },
  };
}
