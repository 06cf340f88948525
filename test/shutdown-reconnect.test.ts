// A real agent link across a coordinator shutdown: told to reconnect, it registers with the next one at the same
// address.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../agent/backends/backend.ts";
import { CoordinatorLink } from "../agent/connection.ts";
import { loadOrCreateKeyFile } from "../common/crypto/key-file.ts";
import { startCoordinator, type Coordinator } from "../coordinator/app.ts";
import { loadConfig } from "../coordinator/config.ts";
import { createLogger } from "../coordinator/logger.ts";
import { newAccountKey } from "./support/coordinator.ts";
import { createTestDatabase, type TestDatabase } from "./support/database.ts";

describe("an agent across a coordinator shutdown", () => {
  let database: TestDatabase;
  const started: Coordinator[] = [];
  const stop = new AbortController();

  /** A coordinator on the shared database; `port` 0 picks one. */
  async function coordinator(port: number, instance: string): Promise<Coordinator> {
    const config = loadConfig({
      HOST: "127.0.0.1",
      PORT: String(port),
      DATABASE_URL: database.url,
      COORDINATOR_INSTANCE: instance,
      COORDINATOR_PRIVATE_KEY_PATH: join(mkdtempSync(join(tmpdir(), "iris-reconnect-")), "coordinator.key"),
      SHUTDOWN_TIMEOUT_MS: "20000",
      SPOT_CHECK_FRACTION: "0",
      CANARY_INTERVAL_MS: "0",
      CLASSIFIER_NODE_BUDGET_MS: "0",
    });
    const running = await startCoordinator(config, createLogger("silent"));
    started.push(running);
    return running;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    stop.abort();
    for (const running of started) await running.close();
    await database?.close();
  });

  it("is told to reconnect, does not hold the shutdown, and registers with the next coordinator", async () => {
    const first = await coordinator(0, "first");
    const accountKey = await newAccountKey(first.url);
    const key = await loadOrCreateKeyFile(join(mkdtempSync(join(tmpdir(), "iris-reconnect-key-")), "node.key"));
    // an idle agent never calls its backend
    const backend = { kind: "embedded" } as Backend;
    const link = new CoordinatorLink({
      coordinatorUrl: first.url,
      identity: {
        nodeId: "moving-node",
        accountKey: accountKey.replaceAll(" ", ""),
        modelName: "Iris Tiny Test Model",
        parameterCount: 113_472,
        quantization: "F32",
        contextLength: 2048,
        tokensPerSecond: 100,
        maxConcurrentTasks: 1,
        gpus: [],
        backend: "embedded",
        agentVersion: "test",
        promisedHoursUtc: [],
        key,
      },
      backend,
      logger: pino({ level: "silent" }),
      signal: stop.signal,
      backoff: { initialMs: 100, maxMs: 500 },
    });
    void link.run();
    await expect.poll(() => first.registry.get("moving-node")).toBeDefined();

    const closeStarted = performance.now();
    await first.close();
    const closeMs = performance.now() - closeStarted;
    expect(closeMs).toBeLessThan(10_000);

    const second = await coordinator(first.port, "second");
    const reconnectStarted = performance.now();
    await expect.poll(() => second.registry.get("moving-node"), { timeout: 5_000 }).toBeDefined();
    console.log(
      `agent across a shutdown: first coordinator closed in ${closeMs.toFixed(0)} ms (SHUTDOWN_TIMEOUT_MS 20000); ` +
        `registered with the next one ${(performance.now() - reconnectStarted).toFixed(0)} ms after it listened`,
    );
  });
});
