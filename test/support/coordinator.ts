// Starts a real coordinator in this process for a test: its own migrated database, a free port, silent logs.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { loadConfig, type Config } from "../../coordinator/config.ts";
import { startCoordinator, type Coordinator } from "../../coordinator/app.ts";
import { createLogger } from "../../coordinator/logger.ts";
import { AccountService } from "../../gen/iris/v1/account_pb.ts";
import type { Bus } from "../../coordinator/cluster/bus.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";

export interface TestCoordinator extends Coordinator {
  config: Config;
  /** Every log line the coordinator wrote, parsed. */
  logs: Record<string, unknown>[];
}

export interface TestCoordinatorOptions {
  /** A database another coordinator of the test uses too (a cluster); the caller closes it. Default: a new one. */
  database?: TestDatabase;
  /** The cluster bus (several coordinators on one LocalNetwork); default: NATS_URL's, or a bus of its own. */
  bus?: Bus;
}

/** `env` overrides the test defaults (PORT=0 on 127.0.0.1, the file's own database). */
export async function startTestCoordinator(
  env: Record<string, string> = {},
  options: TestCoordinatorOptions = {},
): Promise<TestCoordinator> {
  const database = options.database ?? (await createTestDatabase());
  const ownDatabase = options.database === undefined;
  // the coordinator opens its own connection; the helper's one is only needed to drop the database later
  const config = loadConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: database.url,
    LOG_LEVEL: "info",
    COORDINATOR_PRIVATE_KEY_PATH: join(mkdtempSync(join(tmpdir(), "iris-coordinator-")), "coordinator.key"),
    // chat rate limits out of the way; test/rate-limits.test.ts sets its own
    ...{
      RATE_LIMIT_ANONYMOUS_PER_DAY: "1000000",
      RATE_LIMIT_ACCOUNT_KEY_PER_DAY: "1000000",
      RATE_LIMIT_USER_PER_DAY: "1000000",
    },
    // so are the key limits (every test's calls come from 127.0.0.1); test/key-limits.test.ts sets its own
    ...{ RATE_LIMIT_GENERATE_KEY_PER_HOUR: "1000000", RATE_LIMIT_VERIFY_KEY_PER_HOUR: "1000000" },
    // no random spot checks or timed canaries: test/spot-check.test.ts sets its own
    ...{ SPOT_CHECK_FRACTION: "0", CANARY_INTERVAL_MS: "0" },
    // scripted nodes don't answer classify assigns: the chain's node link would add its budget to first requests
    CLASSIFIER_NODE_BUDGET_MS: "0",
    ...env,
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) logs.push(JSON.parse(line));
      callback();
    },
  });
  const coordinator = await startCoordinator(config, createLogger(config.logLevel, sink), { bus: options.bus });
  return {
    ...coordinator,
    config,
    logs,
    async close() {
      await coordinator.close();
      if (ownDatabase) await database.close();
    },
  };
}

/**
 * A new account key ("1234 5678 9012 3456") from the coordinator at `baseUrl`, as AccountService.GenerateKey gives it.
 */
export async function newAccountKey(baseUrl: string): Promise<string> {
  return (await createClient(AccountService, createGrpcTransport({ baseUrl })).generateKey({})).accountKey;
}
