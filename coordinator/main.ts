// Entry point of `npm start`: config → logger → coordinator (or WORKERS coordinator processes), and graceful shutdown
// on SIGTERM/SIGINT.
import { ConfigError, loadConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { startCoordinator } from "./app.ts";
import { isDatabaseUnavailable } from "./db/faults.ts";
import { isWorkerPrimary, onPrimaryShutdown, runWorkers } from "./workers.ts";

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`iris coordinator: ${err.message}\n`);
  process.exit(2);
}

const logger = createLogger(config.logLevel);
// The last line of defence for "no database error ends the process": a lost database in a promise nobody awaited
// is logged (and the caller is a bug to fix); any other unhandled rejection still ends the process as Node would.
process.on("unhandledRejection", (reason) => {
  if (!isDatabaseUnavailable(reason)) throw reason;
  logger.error({ err: reason }, "unhandled database fault");
});
if (isWorkerPrimary(config.workers)) {
  // the primary serves nothing itself: its workers share the port (node:cluster) and migrate under Kysely's advisory
  // lock
  process.exit(await runWorkers({ count: config.workers, instance: config.instance, logger }));
}
let stop: ((signal: NodeJS.Signals | "primary") => void) | undefined;
// asked before the coordinator is up, a worker has served nothing yet: it may exit at once
onPrimaryShutdown(() => (stop ? stop("primary") : process.exit(0)));
try {
  const coordinator = await startCoordinator(config, logger);
  // for the person who ran scripts/start.sh: where to go (stdout stays JSON log lines)
  const { host } = config.server;
  const base = ["0.0.0.0", "::"].includes(host)
    ? coordinator.url
    : coordinator.url.replace("127.0.0.1", host.includes(":") ? `[${host}]` : host);
  process.stderr.write(
    `iris coordinator: listening on ${host}:${coordinator.port}; open ${base}/chat and ${base}/dashboard\n`,
  );
  let signals = 0;
  let stopping = false;
  stop = (signal) => {
    if (signal !== "primary" && ++signals > 1) {
      logger.warn({ signal }, "second signal: exiting at once");
      process.exit(1);
    }
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    coordinator.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} catch (err) {
  logger.fatal({ err }, "coordinator failed to start");
  process.exit(1);
}
