// The agent's run: detects the GPU, opens the backend, benchmarks it, and serves the coordinator until it quits; with
// a terminal UI when stdout is a terminal (JSON log lines otherwise, or with --no-tui). agent/main.ts starts it.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { pino, type Logger } from "pino";
import { loadOrCreateKeyFile } from "../common/crypto/key-file.ts";
import { count } from "../tui/format.ts";
import { divertStderr, showAgentScreen, type ShownScreen } from "../tui/show.tsx";
import type { Backend } from "./backends/backend.ts";
import { createLlamaBackend } from "./backends/llama.ts";
import { createOpenAiCompatibleBackend } from "./backends/openai-compatible.ts";
import { benchmarkBackend } from "./benchmark.ts";
import { AgentConfigError, loadAgentConfig, type AgentConfig } from "./config.ts";
import { CoordinatorLink, RegistrationRefused } from "./connection.ts";
import { detectGpus } from "./gpu.ts";
import { modelFileFingerprint, parseModelName } from "./model-info.ts";
import { readHost, watchReadings } from "./readings.ts";
import { AgentState } from "./state.ts";
import { CoordinatorTlsFault } from "./tls-faults.ts";
import { measureTokenizerRates } from "./tokenizer-rates.ts";

/**
 * Exit codes: 0 stopped (q, SIGINT/SIGTERM), 1 could not start or run (the message names the step: the backend, the
 * key file, the GPU probe, the tokenizer), 2 configuration, 3 refused by the coordinator, 4 a certificate or protocol
 * fault on the way to the coordinator (untrusted, expired, wrong host, http/https mismatch; agent/tls-faults.ts).
 */
const exitCodes = { startup: 1, config: 2, refused: 3, tls: 4 } as const;
const GPU_REFRESH_MS = 3_000;
/** Without the TUI the readings are only for heartbeats: a probe every 10 s is plenty. */
const HEARTBEAT_READINGS_MS = 10_000;

const agentVersion = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

interface AgentOptions {
  /**
   * Wraps the backend the configuration opens, before it is benchmarked and served: the seam a test entry uses to run
   * the real agent with a backend that misbehaves (test/support/dishonest-agent.ts). The agent itself passes none.
   */
  wrapBackend?: (backend: Backend, logger: Logger) => Backend;
}

/** What the keys and signals act on: the link to the coordinator once there is one. */
interface Session {
  config: AgentConfig;
  state: AgentState;
  logger: Logger;
  stop: AbortController;
  link?: CoordinatorLink;
  pausedBeforeLink: boolean;
  quitRequested: boolean;
}

/** Runs the agent until it stops, then exits the process with one of `exitCodes`. */
export async function runAgent(options: AgentOptions = {}): Promise<never> {
  const config = loadConfigOrExit();
  // the screen owns the terminal: logs go to a file then, never between its lines
  const useTui = process.stdout.isTTY === true && !process.argv.includes("--no-tui");
  const logOptions = { name: "iris-agent", level: config.logLevel, redact: ["accountKey", "*.accountKey"] };
  const logger = useTui
    ? pino(logOptions, pino.destination({ dest: config.logFile, mkdir: true, sync: true }))
    : pino(logOptions);
  const state = new AgentState({
    version: agentVersion,
    nodeId: config.nodeId,
    accountKey: config.accountKey,
    coordinatorUrl: config.coordinatorUrl,
    backend: config.backend,
    maxConcurrentTasks: config.maxConcurrentTasks,
  });
  const session: Session = {
    config,
    state,
    logger,
    stop: new AbortController(),
    pausedBeforeLink: false,
    quitRequested: false,
  };
  const actions = controls(session);
  quitOnSignals(session, actions);

  let screen: ShownScreen | undefined;
  let restoreStderr: (() => void) | undefined;
  if (useTui) {
    restoreStderr = divertStderr((text) =>
      logger.warn({ stderr: text.trimEnd() }, "stderr output while the screen was shown"),
    );
    screen = showAgentScreen(state, actions, { logFile: config.logFile });
  }
  async function exit(code: number, message?: string): Promise<never> {
    session.stop.abort();
    await screen?.close();
    restoreStderr?.();
    if (message) process.stderr.write(message);
    if (screen && code === 0) {
      const t = state.snapshot.totals;
      process.stdout.write(
        `iris-agent: stopped · ${count(t.completed)} completed · ${count(t.failed)} failed · ${count(t.handedBack)} ` +
          `handed back · ${count(t.tokens)} tokens · log ${config.logFile}\n`,
      );
    }
    process.exit(code);
  }

  try {
    const { backend, identity } = await startUp(session, useTui, options);
    state.setStage("connecting to the coordinator");
    const link = new CoordinatorLink({
      coordinatorUrl: config.coordinatorUrl,
      ca: config.coordinatorCa,
      identity,
      backend,
      logger,
      signal: session.stop.signal,
      state,
      chunkIntervalMs: config.chunkIntervalMs,
    });
    session.link = link;
    if (session.pausedBeforeLink) link.setPaused(true);
    await link.run();
    logger.info("stopped");
    await backend.close();
    return await exit(0);
  } catch (err) {
    if (err instanceof RegistrationRefused)
      return exit(exitCodes.refused, `iris-agent: the coordinator refused this node: ${err.message}\n`);
    if (err instanceof CoordinatorTlsFault)
      return exit(exitCodes.tls, `iris-agent: cannot connect to the coordinator: ${err.message}\n`);
    if (session.stop.signal.aborted) return exit(0);
    if (err instanceof StartupFailure) return exit(exitCodes.startup, `iris-agent: ${err.message}\n`);
    // past start-up (the link to the coordinator): a bug, with its stack
    return exit(exitCodes.startup, `iris-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
}

function loadConfigOrExit(): AgentConfig {
  try {
    return loadAgentConfig();
  } catch (err) {
    if (!(err instanceof AgentConfigError)) throw err;
    process.stderr.write(`iris-agent: invalid configuration:\n  ${err.problems.join("\n  ")}\n`);
    process.exit(exitCodes.config);
  }
}

/** `p` and `q` in the TUI; SIGINT/SIGTERM quit the same way in both modes. */
function controls(session: Session) {
  return {
    togglePause() {
      if (session.link) return session.link.setPaused(!session.link.paused);
      session.pausedBeforeLink = !session.pausedBeforeLink;
      session.state.setPaused(session.pausedBeforeLink);
    },
    quit() {
      const { link } = session;
      if (!link) return session.stop.abort(); // still starting: nothing to hand back
      if (session.quitRequested) return link.handBackNow();
      session.quitRequested = true;
      void link.quit(session.config.shutdownGraceMs);
    },
  };
}

function quitOnSignals(session: Session, actions: { quit(): void }): void {
  let signals = 0;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      session.logger.info({ signal }, signals === 0 ? "quitting gracefully" : "stopping at once");
      if (signals++ === 0) actions.quit();
      else session.stop.abort(); // a second signal: no more waiting
    });
  }
}

/** A start-up step that failed, in words naming the step: not every failure is the backend's. */
class StartupFailure extends Error {}

/** The key, the backend and its model, the GPUs, the benchmark: everything the node registers with. */
async function startUp({ config, state, logger, stop }: Session, useTui: boolean, options: AgentOptions) {
  /** Runs one start-up step; its failure is reported as `what` failing, with the cause's message. */
  async function step<T>(what: string, run: () => T | Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (stop.signal.aborted || err instanceof StartupFailure) throw err;
      throw new StartupFailure(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  // the key first: a key file that cannot be used should not cost a model load and a benchmark to find out
  const key = await step(`the node key file ${config.nodeKeyPath} (NODE_KEY_PATH) is not usable`, () =>
    loadOrCreateKeyFile(config.nodeKeyPath),
  );
  const unusable = `the ${config.backend} backend is not usable`;
  state.setStage(
    config.backend === "embedded"
      ? `loading the model ${basename(config.modelPath!)}`
      : `opening the ${config.backend} backend at ${config.backendUrl}`,
  );
  const opened = await step(unusable, () => openBackend(config, logger));
  const backend = options.wrapBackend ? options.wrapBackend(opened, logger) : opened;
  const model = await step(unusable, () => backend.describe());
  const parsed = parseModelName(model.name);
  const parameterCount = model.parameterCount || parsed.parameterCount;
  const quantization = model.quantization || parsed.quantization;
  state.setModel({ name: model.name, parameterCount, quantization, contextLength: model.contextLength });
  state.setStage("detecting GPUs");
  const gpus = await step("the GPU probe failed", detectGpus);
  await step("reading the host's load and memory failed", () => state.setReadings(gpus, readHost()));
  // the TUI shows the readings and heartbeats carry them to the coordinator's dashboard
  watchReadings(state, useTui ? GPU_REFRESH_MS : HEARTBEAT_READINGS_MS, stop.signal);
  logger.info({ backend: backend.kind, model: model.name, gpus: gpus.map((g) => g.name) }, "benchmarking the backend");
  state.setStage(`benchmarking the backend (${config.benchmarkTokens} tokens × 3 runs)`);
  const bench = await step(unusable, () =>
    benchmarkBackend(backend, { maxTokens: config.benchmarkTokens, signal: stop.signal }),
  );
  state.setBenchmark(bench.tokensPerSecond);
  const identity = {
    nodeId: config.nodeId,
    accountKey: config.accountKey,
    modelName: model.name,
    parameterCount,
    quantization,
    contextLength: model.contextLength,
    tokensPerSecond: bench.tokensPerSecond,
    maxConcurrentTasks: config.maxConcurrentTasks,
    gpus,
    backend: backend.kind,
    agentVersion,
    promisedHoursUtc: config.promisedHoursUtc,
    tokenizerRates: await step("measuring the tokenizer failed", () => measureTokenizerRates(backend)),
    // the embedded engine reads a file the agent can fingerprint; an HTTP backend's model is out of reach
    ...(config.backend === "embedded"
      ? {
          modelSha256: await step(`reading the model file ${config.modelPath} failed`, () =>
            modelFileFingerprint(config.modelPath!),
          ),
        }
      : {}),
    key,
  };
  logger.info(
    {
      nodeId: identity.nodeId,
      parameters: identity.parameterCount,
      quantization: identity.quantization,
      tokensPerSecond: Math.round(bench.tokensPerSecond * 10) / 10,
      tokenizerRates: identity.tokenizerRates ?? "unknown (the coordinator estimates)",
    },
    "backend ready; connecting to the coordinator",
  );
  return { backend, identity };
}

function openBackend(config: AgentConfig, logger: Logger): Backend | Promise<Backend> {
  if (config.backend === "embedded") {
    return createLlamaBackend({
      modelPath: config.modelPath!,
      threads: config.threads,
      maxConcurrent: config.maxConcurrentTasks,
      log: (level, message) => logger[level]({ source: "llama.cpp" }, message.trim()),
    });
  }
  return createOpenAiCompatibleBackend({
    baseUrl: config.backendUrl,
    kind: config.backend,
    model: config.backendModel || undefined,
  });
}
