// Watches live nodes: disconnects those that missed heartbeats, and records who is alive in batches.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/schema.ts";
import type { NodeRegistry } from "./registry.ts";
import { touchNodes } from "./store.ts";

/** Missing this many heartbeat intervals in a row makes a node offline. */
export const missedHeartbeatsAllowed = 3;
/** last_seen_at is written for all live nodes at once, this often, instead of once per heartbeat. */
const touchEveryMs = 30_000;

export function startNodeMonitor(options: {
  db: Kysely<Database>;
  registry: NodeRegistry;
  logger: Logger;
  heartbeatIntervalMs: number;
  now?: () => number;
}): { stop(): void } {
  const now = options.now ?? Date.now;
  const timeoutMs = options.heartbeatIntervalMs * missedHeartbeatsAllowed;
  const check = setInterval(() => {
    for (const node of options.registry.stale(now(), timeoutMs)) {
      const reason = `no heartbeat for ${now() - node.lastSeenAt} ms (allowed ${timeoutMs} ms)`;
      options.logger.warn({ nodeId: node.id, reason }, "node missed its heartbeats: offline");
      node.disconnect(new ConnectError(reason, Code.DeadlineExceeded));
      options.registry.remove(node, reason);
    }
  }, Math.max(50, Math.floor(options.heartbeatIntervalMs / 2)));
  const touch = setInterval(() => {
    const ids = [...options.registry.nodes()].map((node) => node.id);
    touchNodes(options.db, ids).catch((err: unknown) => options.logger.error({ err }, "could not record live nodes"));
  }, touchEveryMs);
  check.unref();
  touch.unref();
  return {
    stop() {
      clearInterval(check);
      clearInterval(touch);
    },
  };
}
