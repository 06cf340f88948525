// The coordinator's cluster settings from the environment: worker processes, this coordinator's name, its peers over
// NATS, and how crashed peers are found (docs/cluster.md, docs/faults.md).
import { hostname } from "node:os";
import type { EnvReader } from "../../common/env.ts";

export interface ClusterSettings {
  /**
   * Coordinator processes sharing the one port through node:cluster (WORKERS; `auto`: the core count); 1: no cluster.
   */
  workers: number;
  /**
   * This coordinator's name in node_sessions, tasks and coordinator_instances; unique per coordinator sharing a
   * database.
   */
  instance: string;
  /** Coordinators sharing every node over NATS (docs/cluster.md); without NATS_URL a cluster of one, in process. */
  cluster: {
    /** NATS server URL(s), comma-separated (NATS_URL); undefined: the in-process bus, no peers. */
    natsUrl?: string;
    /** The cluster's subject prefix (CLUSTER_NAME): clusters sharing one NATS never hear each other. */
    name: string;
    /** How often each coordinator says it is alive: a beat; changes go out at once (CLUSTER_VIEW_MS). */
    viewMs: number;
    /** A peer silent this long is dead: its nodes are dropped and their tasks fail over (CLUSTER_DEAD_AFTER_MS). */
    deadAfterMs: number;
    /**
     * How long an assign forwarded to a node's home coordinator may wait for its answer (CLUSTER_ASSIGN_TIMEOUT_MS).
     */
    assignTimeoutMs: number;
  };
  /** Database faults and crashed coordinators (docs/faults.md). */
  recovery: {
    /** Task records waiting for the database at which new chat requests are refused (TASK_JOURNAL_MAX_WAITING). */
    journalMaxWaiting: number;
    /**
     * How long an ended task's records wait for others before they are written, as one statement (group commit); 0:
     * at once, after this turn's I/O (TASK_JOURNAL_END_FLUSH_MS). A SIGKILLed coordinator can take this long (and a
     * database round trip) of completions with it.
     */
    journalEndFlushMs: number;
    /** How often this coordinator heartbeats and looks for dead peers (INSTANCE_HEARTBEAT_MS). */
    heartbeatMs: number;
    /** A peer whose heartbeat is older than this is dead: its unfinished tasks are failed (INSTANCE_DEAD_AFTER_MS). */
    deadAfterMs: number;
  };
}

/**
 * `databaseUrl`: DATABASE_URL as read, since a cluster needs one PostgreSQL server; `cores`: what WORKERS=auto means.
 */
export function readClusterSettings(
  r: EnvReader,
  { cores, databaseUrl }: { cores: number; databaseUrl: string | undefined },
): ClusterSettings {
  const settings: ClusterSettings = {
    workers: workers(r, cores),
    instance: r.string("COORDINATOR_INSTANCE", hostname()),
    cluster: {
      natsUrl: natsUrl(r),
      name: r.string("CLUSTER_NAME", "iris"),
      viewMs: r.int("CLUSTER_VIEW_MS", 1_000, 50, 60_000),
      deadAfterMs: r.int("CLUSTER_DEAD_AFTER_MS", 3_000, 150, 600_000),
      assignTimeoutMs: r.int("CLUSTER_ASSIGN_TIMEOUT_MS", 2_000, 50, 60_000),
    },
    recovery: {
      journalMaxWaiting: r.int("TASK_JOURNAL_MAX_WAITING", 100_000, 100, 10_000_000),
      journalEndFlushMs: r.int("TASK_JOURNAL_END_FLUSH_MS", 10, 0, 1_000),
      heartbeatMs: r.int("INSTANCE_HEARTBEAT_MS", 10_000, 100, 600_000),
      deadAfterMs: r.int("INSTANCE_DEAD_AFTER_MS", 60_000, 300, 86_400_000),
    },
  };
  const { cluster, recovery } = settings;
  if (recovery.deadAfterMs < 3 * recovery.heartbeatMs) {
    // two missed heartbeats (a slow database, a GC pause) must not make a live peer look dead
    r.problem("INSTANCE_DEAD_AFTER_MS must be at least 3 times INSTANCE_HEARTBEAT_MS");
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cluster.name)) {
    r.problem("CLUSTER_NAME must be 1-64 letters, digits, '_' or '-' (it prefixes NATS subjects)");
  }
  const postgres = /^postgres(ql)?:/.test(databaseUrl ?? "");
  if (cluster.natsUrl !== undefined && !postgres) {
    // every coordinator of a cluster reads and writes the same accounts, nodes and tasks: one PostgreSQL server
    r.problem(
      "NATS_URL (a cluster) needs DATABASE_URL: the coordinators of a cluster share one PostgreSQL server, not an " +
        "embedded PGlite each",
    );
  }
  if (settings.workers > 1 && (cluster.natsUrl === undefined || !postgres)) {
    // workers are coordinators of one cluster: without NATS each would see only its own nodes, and PGlite is one
    // process
    r.problem(
      `WORKERS=${settings.workers} needs NATS_URL and a PostgreSQL DATABASE_URL: the workers are a cluster sharing ` +
        `nodes over NATS and one database`,
    );
  }
  if (cluster.deadAfterMs < 2 * cluster.viewMs) {
    // one late view (a GC pause, a busy NATS) must not make a live peer look dead
    r.problem("CLUSTER_DEAD_AFTER_MS must be at least 2 times CLUSTER_VIEW_MS");
  }
  return settings;
}

/** WORKERS: a whole number from 1, or `auto` for the machine's core count. */
function workers(r: EnvReader, cores: number): number {
  if (r.string("WORKERS")?.toLowerCase() === "auto") return cores;
  return r.int("WORKERS", 1, 1, 1_024);
}

/** NATS_URL: one or more nats:// (or tls://) server URLs, comma-separated. */
function natsUrl(r: EnvReader): string | undefined {
  const urls = r.list("NATS_URL");
  if (urls.length === 0) return undefined;
  for (const url of urls) {
    let protocol: string;
    try {
      protocol = new URL(url).protocol;
    } catch {
      r.problem("NATS_URL must be a comma-separated list of nats:// URLs");
      return undefined;
    }
    if (protocol !== "nats:" && protocol !== "tls:") {
      r.problem("NATS_URL must be a comma-separated list of nats:// (or tls://) URLs");
      return undefined;
    }
  }
  return urls.join(",");
}
