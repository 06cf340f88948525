// Runs the real `iris-agent` (agent/main.ts, or test/support/dishonest-agent.ts for a node that lies) as a child
// process for end-to-end tests, and reads its JSON logs; and the network of a coordinator and such agents on the
// generated tiny model that those tests share.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { writeTinyGguf, type TinyGgufOptions } from "../fixtures/tiny-gguf.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./coordinator.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** Resolves when a log line matches, rejects if the process exits first. */
  waitForLog(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

interface AgentProcessOptions {
  /** Runs the agent with a backend that alters every answer (test/support/dishonest-agent.ts). */
  dishonest?: boolean;
}

export function startAgent(env: Record<string, string>, options: AgentProcessOptions = {}): AgentProcess {
  const clean = { ...process.env };
  for (const name of [
    "IRIS_ACCOUNT_KEY",
    "NODE_ID",
    "IRIS_MODEL",
    "IRIS_BACKEND",
    "BACKEND_URL",
    "DATABASE_URL",
    "COORDINATOR_CA_PATH",
  ])
    delete clean[name];
  // node --import tsx: one process, so a SIGKILL kills the agent itself (the tsx CLI would leave its child running)
  const entry = options.dishonest ? "test/support/dishonest-agent.ts" : "agent/main.ts";
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
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
        const timer = setTimeout(
          () => finish(() => reject(new Error(`no matching agent log line in ${timeoutMs} ms; stderr: ${stderr}`))),
          timeoutMs,
        );
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

/** A coordinator and real agents on a freshly generated tiny model: the setup the end-to-end agent tests share. */
export interface AgentNetwork {
  coordinator: TestCoordinator;
  accountKey: string;
  modelPath: string;
  /** The agents started and not stopped, by node id. */
  agents: Map<string, AgentProcess>;
  /** Starts an agent on the tiny model (env overrides) and resolves once the coordinator registered it. */
  agent(nodeId: string, env?: Record<string, string>, options?: AgentProcessOptions): Promise<AgentProcess>;
  /** SIGKILLs an agent and waits until it is gone from the coordinator. */
  stop(nodeId: string): Promise<void>;
  /** Kills every agent and closes the coordinator. */
  close(): Promise<void>;
}

export async function startAgentNetwork(
  options: { coordinatorEnv?: Record<string, string>; model?: TinyGgufOptions } = {},
): Promise<AgentNetwork> {
  const modelPath = join(mkdtempSync(join(tmpdir(), "iris-agents-")), "tiny.gguf");
  writeTinyGguf(modelPath, options.model);
  const coordinator = await startTestCoordinator({ HEARTBEAT_INTERVAL_MS: "500", ...options.coordinatorEnv });
  const accountKey = await newAccountKey(coordinator.url);
  const agents = new Map<string, AgentProcess>();
  return {
    coordinator,
    accountKey,
    modelPath,
    agents,
    async agent(nodeId, env = {}, agentOptions = {}) {
      const started = startAgent(
        {
          COORDINATOR_URL: coordinator.url,
          IRIS_ACCOUNT_KEY: accountKey,
          NODE_ID: nodeId,
          IRIS_MODEL: modelPath,
          ...env,
        },
        agentOptions,
      );
      agents.set(nodeId, started);
      await started.waitForLog((line) => line.msg === "registered with the coordinator", 60_000);
      return started;
    },
    async stop(nodeId) {
      const agent = agents.get(nodeId)!;
      agent.kill();
      await agent.exited;
      agents.delete(nodeId);
      while (coordinator.registry.get(nodeId)?.connected) await new Promise((resolve) => setTimeout(resolve, 20));
    },
    async close() {
      for (const agent of agents.values()) agent.kill();
      await coordinator.close();
    },
  };
}
