// WORKERS=N: N coordinator processes sharing the one port through node:cluster; the primary forks, restarts and stops
// them.
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";

/** The IPC message by which the primary asks a worker to shut down gracefully. */
const SHUTDOWN = "iris:shutdown";

export interface WorkerPoolOptions {
  count: number;
  /** The configured COORDINATOR_INSTANCE; worker i runs as `<instance>-w<i>` (unique in coordinator_instances). */
  instance: string;
  logger: Logger;
  /** First restart delay after an unexpected death; doubles while workers die young, up to 30 s. */
  restartDelayMs?: number;
}

/** A worker that lived this long was healthy: its next death restarts at the first delay again. */
const HEALTHY_AFTER_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;

/**
 * In the primary: forks `count` workers, restarts one that dies unexpectedly, and on SIGTERM/SIGINT asks them all to
 * shut down. Resolves with the exit code for the primary once they have all exited: 0 when every one exited cleanly.
 */
export function runWorkers(options: WorkerPoolOptions): Promise<number> {
  const { count, instance, logger } = options;
  const firstDelayMs = options.restartDelayMs ?? 1_000;
  const workers = new Map<number, Worker>(); // slot → live worker
  const delays = new Map<number, number>(); // slot → next restart delay
  const restarts = new Set<NodeJS.Timeout>();
  let stopping = false;
  let failed = false;
  let done: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => (done = resolve));

  function fork(slot: number): void {
    const name = `${instance}-w${slot}`;
    const worker = cluster.fork({ COORDINATOR_INSTANCE: name });
    const startedAt = Date.now();
    workers.set(slot, worker);
    worker.on("exit", (code, signal) => {
      workers.delete(slot);
      if (stopping) {
        if (code !== 0) failed = true;
        logger.info({ worker: name, code, signal }, "worker exited");
        if (workers.size === 0) done(failed ? 1 : 0);
        return;
      }
      const healthy = Date.now() - startedAt >= HEALTHY_AFTER_MS;
      const delayMs = healthy ? firstDelayMs : (delays.get(slot) ?? firstDelayMs);
      delays.set(slot, Math.min(delayMs * 2, MAX_RESTART_DELAY_MS));
      logger.warn({ worker: name, code, signal, restartInMs: delayMs }, "worker died unexpectedly; restarting");
      const timer = setTimeout(() => {
        restarts.delete(timer);
        if (!stopping) fork(slot);
      }, delayMs);
      restarts.add(timer);
    });
  }

  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      logger.warn({ signal }, "second signal: killing the workers at once");
      for (const worker of workers.values()) worker.process.kill("SIGKILL");
      done(1);
      return;
    }
    stopping = true;
    for (const timer of restarts) clearTimeout(timer);
    restarts.clear();
    logger.info({ signal, workers: workers.size }, "shutting down the workers");
    if (workers.size === 0) done(failed ? 1 : 0);
    // a message, not a signal: a Ctrl-C already signalled the whole process group, and a second signal would mean "at
    // once"
    for (const worker of workers.values()) if (worker.isConnected()) worker.send(SHUTDOWN);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  logger.info({ workers: count, instance }, "starting coordinator workers");
  for (let slot = 1; slot <= count; slot++) fork(slot);
  return finished;
}

/**
 * In a worker: calls `shutdown` when the primary asks for a graceful shutdown. Does nothing outside a cluster worker.
 */
export function onPrimaryShutdown(shutdown: () => void): void {
  if (!cluster.isWorker) return;
  process.on("message", (message) => {
    if (message === SHUTDOWN) shutdown();
  });
}

/** Whether this process is the primary that must fork `workers` coordinator processes rather than be one. */
export function isWorkerPrimary(workers: number): boolean {
  return workers > 1 && cluster.isPrimary;
}
