// Watches live nodes: disconnects those that missed heartbeats, records who is alive in batches, follows
// suspensions set or lifted by other coordinators, and writes re-tiers and canary verdicts as they happen.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/schema.ts";
import type { NodeRegistry } from "./registry.ts";
import { saveMeasurements, touchNodes } from "./store.ts";
import { syncSuspensions } from "./suspension.ts";

/** Missing this many heartbeat intervals in a row makes a node offline. */
const missedHeartbeatsAllowed = 3;
/** last_seen_at is written for all live nodes at once, this often, instead of once per heartbeat. */
const touchEveryMs = 30_000;

export function startNodeMonitor(options: {
  db: Kysely<Database>;
  registry: NodeRegistry;
  logger: Logger;
  heartbeatIntervalMs: number;
  /** How often suspensions are read back from the database (0: only at registration). */
  suspensionSyncMs?: number;
  now?: () => number;
}): { stop(): void } {
  const now = options.now ?? Date.now;
  const timeoutMs = options.heartbeatIntervalMs * missedHeartbeatsAllowed;
  const check = setInterval(
    () => {
      for (const node of options.registry.stale(now(), timeoutMs)) {
        const reason = `no heartbeat for ${now() - node.lastSeenAt} ms (allowed ${timeoutMs} ms)`;
        options.logger.warn({ nodeId: node.id, reason }, "node missed its heartbeats: offline");
        node.disconnect(new ConnectError(reason, Code.DeadlineExceeded));
        options.registry.remove(node, reason);
      }
    },
    Math.max(50, Math.floor(options.heartbeatIntervalMs / 2)),
  );
  const touch = setInterval(() => {
    const ids = [...options.registry.nodes()].map((node) => node.id);
    touchNodes(options.db, ids).catch((err: unknown) => options.logger.error({ err }, "could not record live nodes"));
  }, touchEveryMs);
  const unmeasured = options.registry.onMeasured((node, previousTier) => {
    if (previousTier !== undefined) {
      options.logger.warn(
        { nodeId: node.id, from: previousTier, to: node.tier, reason: node.tierReason },
        "node re-tiered by its measured speed",
      );
    }
    // a new tier or a canary's verdict is written at once; plain speed samples at the session's end (nodes/service.ts)
    if (!node.measured.takeUnsaved() && previousTier === undefined) return;
    saveMeasurements(options.db, node.id, node.tier, node.measured.snapshot()).catch((err: unknown) =>
      options.logger.error({ err, nodeId: node.id }, "could not write the node's measurements"),
    );
  });
  let syncing = false;
  const sync =
    options.suspensionSyncMs && options.suspensionSyncMs > 0
      ? setInterval(() => {
          if (syncing) return; // a slow database: skip a beat rather than pile up reads
          syncing = true;
          syncSuspensions(options.db, [...options.registry.nodes()])
            .then((changed) => {
              for (const id of changed) {
                const suspended = options.registry.get(id)?.suspended;
                options.logger.warn(
                  { nodeId: id, suspended },
                  suspended
                    ? "node suspended (seen in the database)"
                    : "node's suspension lifted (seen in the database)",
                );
              }
            })
            .catch((err: unknown) => options.logger.error({ err }, "could not read suspensions"))
            .finally(() => (syncing = false));
        }, options.suspensionSyncMs)
      : undefined;
  check.unref();
  touch.unref();
  sync?.unref();
  return {
    stop() {
      clearInterval(check);
      clearInterval(touch);
      clearInterval(sync);
      unmeasured();
    },
  };
}
