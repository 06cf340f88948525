// Runs the real coordinator (coordinator/main.ts) as a child process on a given database: for tests that must see it
// survive a fault, or be killed with SIGKILL, as an operator's process would.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { root } from "./cli-process.ts";

export interface CoordinatorProcess {
  child: ChildProcess;
  url: string;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  exited: Promise<number | string>;
  readonly alive: boolean;
  /** SIGKILL, and waits for the exit. */
  kill(): Promise<void>;
}

/**
 * Starts main.ts with the test defaults (port 0, no rate limits, no spot checks) and `env`; resolves once it listens.
 */
export async function startCoordinatorProcess(env: Record<string, string>): Promise<CoordinatorProcess> {
  const dir = mkdtempSync(join(tmpdir(), "iris-coordinator-process-"));
  // node --import tsx: one process, so SIGKILL reaches the coordinator itself (the tsx CLI would be a parent)
  const child = spawn(process.execPath, ["--import", "tsx", "coordinator/main.ts"], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      DATA_DIR: dir,
      COORDINATOR_PRIVATE_KEY_PATH: join(dir, "coordinator.key"),
      LOG_LEVEL: "info",
      ...{
        RATE_LIMIT_ANONYMOUS_PER_DAY: "1000000",
        RATE_LIMIT_ACCOUNT_KEY_PER_DAY: "1000000",
        RATE_LIMIT_USER_PER_DAY: "1000000",
      },
      ...{ SPOT_CHECK_FRACTION: "0", CANARY_INTERVAL_MS: "0", CLASSIFIER_NODE_BUDGET_MS: "0" },
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // not a log line
      }
      logs.push(event);
      if (typeof event.msg === "string" && event.msg.startsWith("coordinator listening")) resolve(event.port as number);
    });
    void exited.then((code) => reject(new Error(`coordinator exited with ${code} before listening: ${stderr}`)));
  });
  let alive = true;
  void exited.then(() => (alive = false));
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    logs,
    exited,
    get alive() {
      return alive;
    },
    async kill() {
      if (!alive) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}
