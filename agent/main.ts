// `npm run agent` (iris-agent): detects the GPU, opens the backend, benchmarks it, and serves the coordinator.
import { readFileSync } from "node:fs";
import { pino } from "pino";
import { type Backend } from "./backends/backend.ts";
import { createLlamaBackend } from "./backends/llama.ts";
import { createOpenAiCompatibleBackend } from "./backends/openai-compatible.ts";
import { benchmarkBackend } from "./benchmark.ts";
import { AgentConfigError, loadAgentConfig, type AgentConfig } from "./config.ts";
import { RegistrationRefused, runConnection } from "./connection.ts";
import { detectGpus } from "./gpu.ts";
import { loadOrCreateKeyFile } from "../common/crypto/key-file.ts";
import { parseModelName } from "./model-info.ts";

/** Exit codes: 0 stopped by a signal, 1 backend unusable, 2 configuration, 3 refused by the coordinator. */
const exitCodes = { backend: 1, config: 2, refused: 3 } as const;

const agentVersion = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

let config: AgentConfig;
try {
  config = loadAgentConfig();
} catch (err) {
  if (!(err instanceof AgentConfigError)) throw err;
  process.stderr.write(`iris-agent: invalid configuration:\n  ${err.problems.join("\n  ")}\n`);
  process.exit(exitCodes.config);
}

const logger = pino({ name: "iris-agent", level: config.logLevel, redact: ["accountKey", "*.accountKey"] });
const stop = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => stop.abort());

async function openBackend(): Promise<Backend> {
  if (config.backend === "embedded") {
    return createLlamaBackend({ modelPath: config.modelPath!, threads: config.threads, maxConcurrent: config.maxConcurrentTasks });
  }
  return createOpenAiCompatibleBackend({ baseUrl: config.backendUrl, kind: config.backend, model: config.backendModel || undefined });
}

let backend: Backend;
try {
  backend = await openBackend();
  const model = await backend.describe();
  const parsed = parseModelName(model.name);
  const gpus = await detectGpus();
  logger.info({ backend: backend.kind, model: model.name, gpus: gpus.map((g) => g.name) }, "benchmarking the backend");
  const bench = await benchmarkBackend(backend, { maxTokens: config.benchmarkTokens, signal: stop.signal });
  const identity = {
    nodeId: config.nodeId,
    accountKey: config.accountKey,
    modelName: model.name,
    parameterCount: model.parameterCount || parsed.parameterCount,
    quantization: model.quantization || parsed.quantization,
    contextLength: model.contextLength,
    tokensPerSecond: bench.tokensPerSecond,
    maxConcurrentTasks: config.maxConcurrentTasks,
    gpus,
    backend: backend.kind,
    agentVersion,
    promisedHoursUtc: config.promisedHoursUtc,
    key: await loadOrCreateKeyFile(config.nodeKeyPath),
  };
  logger.info(
    { nodeId: identity.nodeId, parameters: identity.parameterCount, quantization: identity.quantization, tokensPerSecond: Math.round(bench.tokensPerSecond * 10) / 10 },
    "backend ready; connecting to the coordinator",
  );
  await runConnection({ coordinatorUrl: config.coordinatorUrl, identity, backend, logger, signal: stop.signal });
  await backend.close();
  process.exit(0);
} catch (err) {
  if (err instanceof RegistrationRefused) {
    process.stderr.write(`iris-agent: the coordinator refused this node: ${err.message}\n`);
    process.exit(exitCodes.refused);
  }
  if (stop.signal.aborted) process.exit(0);
  process.stderr.write(`iris-agent: the ${config.backend} backend is not usable: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(exitCodes.backend);
}
