// The coordinator's configuration: read once from the environment, typed, and validated at start.
import { availableParallelism, hostname } from "node:os";

/** A wrong configuration value; the message names the variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface Config {
  /** Where clients connect: one port for HTTP/1.1, h2c, and TLS when configured. */
  server: {
    host: string;
    port: number;
    tls?: { certPath: string; keyPath: string };
    /** Largest request message accepted, in bytes (Connect/gRPC `readMaxBytes`). */
    maxMessageBytes: number;
    /** How long shutdown waits for user requests (not agents' streams) before aborting them. */
    shutdownTimeoutMs: number;
    trustProxy: boolean;
    connections: ConnectionLimits;
  };
  database: {
    /** A PostgreSQL server URL; undefined means the embedded PGlite under `dataDir`. */
    url?: string;
    poolSize: number;
  };
  dataDir: string;
  logLevel: LogLevel;
  jwtSecret?: string;
  /** Lowercased emails whose users get role admin at register, login and refresh (the only way to be admin). */
  adminEmails: string[];
  coordinatorPrivateKeyPath: string;
  openRouter: { apiKey?: string; url: string; model: string };
  /** Chat messages per rolling 24 h: per client address, per account key, per signed-in user (JWT); unlimitedAccountKeys (16 digits) are exempt. */
  rateLimits: { anonymousPerDay: number; accountKeyPerDay: number; userPerDay: number; unlimitedAccountKeys: string[] };
  /** AccountService.GenerateKey / VerifyKey calls per client address per rolling hour (0 switches the method off). */
  keyRateLimits: { generateKeyPerHour: number; verifyKeyPerHour: number };
  nodes: {
    heartbeatIntervalMs: number;
    /** How often live nodes' suspensions are read back from the database (SUSPENSION_SYNC_MS; 0: only at registration). */
    suspensionSyncMs: number;
    /** How long a NodeService stream has to send its register, and then its register proof (NODE_REGISTER_TIMEOUT_MS). */
    registerTimeoutMs: number;
  };
  /** updateMs: how often a waiting request hears its position and estimated wait again (QUEUE_UPDATE_MS). */
  queue: { maxLength: number; maxWaitMs: number; updateMs: number };
  tasks: {
    /** SPEC's per-difficulty timeouts (60 s, 300 s, 600 s by default). */
    timeoutsMs: { SIMPLE: number; COMPLEX: number; ADVANCED: number };
    /** Nodes tried for one request (first try plus re-routes) before it fails. */
    maxAttempts: number;
    /** max_tokens when a request gives none. */
    defaultMaxTokens: number;
  };
  /** Division modes and spot checks (docs/concepts/division.md). */
  division: {
    /** Nodes that answer a consensus request when it does not say (CONSENSUS_DEFAULT_NODES). */
    consensusDefaultNodes: number;
    /** Two answers agree when their normalised word similarity reaches this (CONSENSUS_SIMILARITY, 0.5–1). */
    consensusSimilarity: number;
    /** The most parts the planner may split a request into (SUBTASKS_MAX_PARTS). */
    subtasksMaxParts: number;
    /** Tokens per chunk of a long document, at most (CONTEXT_CHUNK_TOKENS); nodes' context lengths lower it. */
    contextChunkTokens: number;
    /** Tokens each chunk repeats from the end of the previous one (CONTEXT_OVERLAP_TOKENS). */
    contextOverlapTokens: number;
    /** The most tokens one chunk's notes may take (CONTEXT_NOTE_TOKENS). */
    contextNoteTokens: number;
    /** The most chunks one document may be split into (CONTEXT_MAX_CHUNKS); longer ones are refused. */
    contextMaxChunks: number;
    /** The share of single-mode tasks re-run on a second node to check the first (SPOT_CHECK_FRACTION, 0–1). */
    spotCheckFraction: number;
    /** Mismatches after which a node gets no more work until an admin clears it (SPOT_CHECK_SUSPEND_AFTER). */
    spotCheckSuspendAfter: number;
    /** How long a chosen check may wait for a free checker (SPOT_CHECK_MAX_WAIT_MS); 0: only a node free at once. */
    spotCheckMaxWaitMs: number;
    /** How often a known-answer canary prompt goes to one idle node; 0 turns canaries off (CANARY_INTERVAL_MS). */
    canaryIntervalMs: number;
  };
  economics: {
    /** Units distributed each month across accounts (MONTHLY_POOL_UNITS). */
    monthlyPool: number;
    /** How often the month-to-date earnings estimate sent to nodes is recomputed (EARNINGS_ESTIMATE_MS). */
    estimateRefreshMs: number;
  };
  /** The difficulty classifier chain (OpenRouter → an idle node → local rules). */
  classifier: { openRouterBudgetMs: number; nodeBudgetMs: number; cacheTtlMs: number; cacheMaxEntries: number };
  /** Coordinator processes sharing the one port through node:cluster (WORKERS; `auto`: the core count); 1: no cluster. */
  workers: number;
  /** This coordinator's name in node_sessions, tasks and coordinator_instances; unique per coordinator sharing a database. */
  instance: string;
  /** Coordinators sharing every node over NATS (docs/cluster.md); without NATS_URL a cluster of one, in process. */
  cluster: {
    /** NATS server URL(s), comma-separated (NATS_URL); undefined: the in-process bus, no peers. */
    natsUrl?: string;
    /** The cluster's subject prefix (CLUSTER_NAME): clusters sharing one NATS never hear each other. */
    name: string;
    /** How often each coordinator publishes all its nodes (CLUSTER_VIEW_MS). */
    viewMs: number;
    /** A peer silent this long is dead: its nodes are dropped and their tasks fail over (CLUSTER_DEAD_AFTER_MS). */
    deadAfterMs: number;
    /** How long an assign forwarded to a node's home coordinator may wait for its answer (CLUSTER_ASSIGN_TIMEOUT_MS). */
    assignTimeoutMs: number;
  };
  /** Database faults and crashed coordinators (docs/faults.md). */
  recovery: {
    /** Task records waiting for the database at which new chat requests are refused (TASK_JOURNAL_MAX_WAITING). */
    journalMaxWaiting: number;
    /** How often this coordinator heartbeats and looks for dead peers (INSTANCE_HEARTBEAT_MS). */
    heartbeatMs: number;
    /** A peer whose heartbeat is older than this is dead: its unfinished tasks are failed (INSTANCE_DEAD_AFTER_MS). */
    deadAfterMs: number;
  };
}

/** What one client connection may hold, and for how long (docs/operations-limits.md, "Connections"). */
export interface ConnectionLimits {
  /** HTTP/1.1: a request's head must arrive within this (HTTP_HEADERS_TIMEOUT_MS). */
  headersTimeoutMs: number;
  /** A request's body must arrive within this from its start; client- and bidi-streaming RPCs are exempt (HTTP_REQUEST_TIMEOUT_MS). */
  requestTimeoutMs: number;
  /** A connection with no request or stream in progress for this long is closed (HTTP_IDLE_TIMEOUT_MS). */
  idleTimeoutMs: number;
  /** Streams one HTTP/2 connection may have open, advertised in SETTINGS (HTTP2_MAX_CONCURRENT_STREAMS). */
  http2MaxConcurrentStreams: number;
  /** Open connections per client (TCP peer) address; 0: no cap (MAX_CONNECTIONS_PER_ADDRESS). */
  maxConnectionsPerAddress: number;
}

type Env = Record<string, string | undefined>;

/** Collects every problem before failing, so one start shows them all. */
class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  }

  string(name: string, fallback: string): string;
  string(name: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    return this.raw(name) ?? fallback;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
      this.problems.push(`${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`);
      return fallback;
    }
    return n;
  }

  /** A decimal number (fractions, thresholds). */
  number(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^-?(\d+\.?\d*|\.\d+)$/.test(value) || n < min || n > max) {
      this.problems.push(`${name} must be a number from ${min} to ${max} (got ${JSON.stringify(value)})`);
      return fallback;
    }
    return n;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (["1", "true", "yes", "on"].includes(value)) return true;
    if (["0", "false", "no", "off"].includes(value)) return false;
    this.problems.push(`${name} must be true or false (got ${JSON.stringify(value)})`);
    return fallback;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      this.problems.push(`${name} must be one of ${allowed.join(", ")} (got ${JSON.stringify(value)})`);
      return fallback;
    }
    return value as T;
  }

  url(name: string, protocols: readonly string[]): string | undefined;
  url(name: string, protocols: readonly string[], fallback: string): string;
  url(name: string, protocols: readonly string[], fallback?: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      // never echo the value: URLs such as DATABASE_URL may hold a password
      this.problems.push(`${name} is not a valid URL`);
      return fallback;
    }
    if (!protocols.includes(parsed.protocol)) {
      this.problems.push(`${name} must start with ${protocols.map((p) => p + "//").join(" or ")}`);
      return fallback;
    }
    return value;
  }

  list(name: string): string[] {
    return (this.raw(name) ?? "")
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "");
  }
}

/** WORKERS: a whole number from 1, or `auto` for the machine's core count. */
function workers(r: Reader, cores: number): number {
  if (r.string("WORKERS")?.toLowerCase() === "auto") return cores;
  return r.int("WORKERS", 1, 1, 1_024);
}

/** NATS_URL: one or more nats:// (or tls://) server URLs, comma-separated. */
function natsUrl(r: Reader): string | undefined {
  const urls = r.list("NATS_URL");
  if (urls.length === 0) return undefined;
  for (const url of urls) {
    let protocol: string;
    try {
      protocol = new URL(url).protocol;
    } catch {
      r.problems.push("NATS_URL must be a comma-separated list of nats:// URLs");
      return undefined;
    }
    if (protocol !== "nats:" && protocol !== "tls:") {
      r.problems.push("NATS_URL must be a comma-separated list of nats:// (or tls://) URLs");
      return undefined;
    }
  }
  return urls.join(",");
}

const logLevels: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const accountKeyPattern = /^\d{4} ?\d{4} ?\d{4} ?\d{4}$/;
// The HTML5 rule protovalidate's `email: true` applies to RegisterRequest.email, so every listed admin can register.
const emailPattern =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/** Reads and validates the configuration; throws ConfigError naming every wrong variable. */
export function loadConfig(env: Env = process.env, cores: number = availableParallelism()): Config {
  const r = new Reader(env);
  const certPath = r.string("TLS_CERT_PATH");
  const keyPath = r.string("TLS_KEY_PATH");
  if ((certPath === undefined) !== (keyPath === undefined)) {
    r.problems.push("TLS_CERT_PATH and TLS_KEY_PATH must be set together (or neither)");
  }
  const jwtSecret = r.string("JWT_SECRET");
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    r.problems.push("JWT_SECRET must be at least 32 characters long");
  }
  const adminEmails = r.list("ADMIN_EMAILS");
  const badEmails = adminEmails.filter((email) => !emailPattern.test(email));
  if (badEmails.length > 0) {
    r.problems.push(`ADMIN_EMAILS must be a comma-separated list of email addresses (not: ${JSON.stringify(badEmails)})`);
  }
  const dataDir = r.string("DATA_DIR", "data");
  const unlimited = r.list("UNLIMITED_ACCOUNT_KEYS");
  if (unlimited.some((key) => !accountKeyPattern.test(key))) {
    r.problems.push("UNLIMITED_ACCOUNT_KEYS must be a comma-separated list of 16-digit account keys");
  }
  const trustProxy = r.bool("TRUST_PROXY", false);
  const headersTimeoutMs = r.int("HTTP_HEADERS_TIMEOUT_MS", 10_000, 100, 600_000);
  const requestTimeoutMs = r.int("HTTP_REQUEST_TIMEOUT_MS", 60_000, 100, 3_600_000);
  if (headersTimeoutMs > requestTimeoutMs) r.problems.push("HTTP_HEADERS_TIMEOUT_MS must not be above HTTP_REQUEST_TIMEOUT_MS");
  const config: Config = {
    server: {
      host: r.string("HOST", "0.0.0.0"),
      port: r.int("PORT", 8080, 0, 65535),
      ...(certPath && keyPath ? { tls: { certPath, keyPath } } : {}),
      maxMessageBytes: r.int("MAX_MESSAGE_BYTES", 16 * 1024 * 1024, 1024, 256 * 1024 * 1024),
      shutdownTimeoutMs: r.int("SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
      trustProxy,
      connections: {
        headersTimeoutMs,
        requestTimeoutMs,
        idleTimeoutMs: r.int("HTTP_IDLE_TIMEOUT_MS", 65_000, 100, 3_600_000),
        http2MaxConcurrentStreams: r.int("HTTP2_MAX_CONCURRENT_STREAMS", 100, 1, 10_000),
        // behind a trusted proxy every connection comes from the proxy's address: no cap unless one is asked for
        maxConnectionsPerAddress: r.int("MAX_CONNECTIONS_PER_ADDRESS", trustProxy ? 0 : 64, 0, 1_000_000),
      },
    },
    database: {
      url: r.url("DATABASE_URL", ["postgres:", "postgresql:", "memory:"]),
      poolSize: r.int("DATABASE_POOL_SIZE", 10, 1, 1000),
    },
    dataDir,
    logLevel: r.oneOf("LOG_LEVEL", "info", logLevels),
    jwtSecret,
    adminEmails: [...new Set(adminEmails.map((email) => email.toLowerCase()))],
    coordinatorPrivateKeyPath: r.string("COORDINATOR_PRIVATE_KEY_PATH", `${dataDir}/coordinator.key`),
    openRouter: {
      apiKey: r.string("OPENROUTER_API_KEY"),
      url: r.url("OPENROUTER_URL", ["http:", "https:"], "https://openrouter.ai/api/v1"),
      model: r.string("OPENROUTER_MODEL", "openai/gpt-4o-mini"),
    },
    rateLimits: {
      anonymousPerDay: r.int("RATE_LIMIT_ANONYMOUS_PER_DAY", 1, 0, 1_000_000),
      accountKeyPerDay: r.int("RATE_LIMIT_ACCOUNT_KEY_PER_DAY", 3, 0, 1_000_000),
      userPerDay: r.int("RATE_LIMIT_USER_PER_DAY", 100, 0, 1_000_000),
      unlimitedAccountKeys: unlimited.map((key) => key.replaceAll(" ", "")),
    },
    keyRateLimits: {
      generateKeyPerHour: r.int("RATE_LIMIT_GENERATE_KEY_PER_HOUR", 10, 0, 1_000_000),
      verifyKeyPerHour: r.int("RATE_LIMIT_VERIFY_KEY_PER_HOUR", 60, 0, 1_000_000),
    },
    nodes: {
      heartbeatIntervalMs: r.int("HEARTBEAT_INTERVAL_MS", 5_000, 100, 600_000),
      suspensionSyncMs: r.int("SUSPENSION_SYNC_MS", 5_000, 0, 3_600_000),
      registerTimeoutMs: r.int("NODE_REGISTER_TIMEOUT_MS", 5_000, 100, 600_000),
    },
    queue: {
      maxLength: r.int("QUEUE_MAX_LENGTH", 1_000, 0, 1_000_000),
      maxWaitMs: r.int("QUEUE_MAX_WAIT_MS", 30_000, 0, 3_600_000),
      updateMs: r.int("QUEUE_UPDATE_MS", 2_000, 100, 60_000),
    },
    tasks: {
      timeoutsMs: {
        SIMPLE: r.int("TASK_TIMEOUT_SIMPLE_MS", 60_000, 100, 86_400_000),
        COMPLEX: r.int("TASK_TIMEOUT_COMPLEX_MS", 300_000, 100, 86_400_000),
        ADVANCED: r.int("TASK_TIMEOUT_ADVANCED_MS", 600_000, 100, 86_400_000),
      },
      maxAttempts: r.int("TASK_MAX_ATTEMPTS", 3, 1, 20),
      defaultMaxTokens: r.int("DEFAULT_MAX_TOKENS", 1_024, 1, 131_072),
    },
    division: {
      consensusDefaultNodes: r.int("CONSENSUS_DEFAULT_NODES", 3, 2, 9),
      consensusSimilarity: r.number("CONSENSUS_SIMILARITY", 0.9, 0.5, 1),
      subtasksMaxParts: r.int("SUBTASKS_MAX_PARTS", 6, 2, 32),
      contextChunkTokens: r.int("CONTEXT_CHUNK_TOKENS", 3_072, 256, 1_000_000),
      contextOverlapTokens: r.int("CONTEXT_OVERLAP_TOKENS", 128, 0, 100_000),
      contextNoteTokens: r.int("CONTEXT_NOTE_TOKENS", 512, 16, 100_000),
      contextMaxChunks: r.int("CONTEXT_MAX_CHUNKS", 512, 1, 10_000),
      spotCheckFraction: r.number("SPOT_CHECK_FRACTION", 0.05, 0, 1),
      spotCheckSuspendAfter: r.int("SPOT_CHECK_SUSPEND_AFTER", 3, 1, 1_000),
      spotCheckMaxWaitMs: r.int("SPOT_CHECK_MAX_WAIT_MS", 30_000, 0, 3_600_000),
      canaryIntervalMs: r.int("CANARY_INTERVAL_MS", 600_000, 0, 86_400_000),
    },
    economics: {
      monthlyPool: r.int("MONTHLY_POOL_UNITS", 1_000_000, 0, Number.MAX_SAFE_INTEGER),
      estimateRefreshMs: r.int("EARNINGS_ESTIMATE_MS", 60_000, 100, 86_400_000),
    },
    classifier: {
      openRouterBudgetMs: r.int("CLASSIFIER_OPENROUTER_BUDGET_MS", 2_500, 100, 60_000),
      nodeBudgetMs: r.int("CLASSIFIER_NODE_BUDGET_MS", 2_000, 0, 60_000),
      cacheTtlMs: r.int("CLASSIFIER_CACHE_TTL_MS", 600_000, 0, 86_400_000),
      cacheMaxEntries: r.int("CLASSIFIER_CACHE_MAX_ENTRIES", 10_000, 0, 1_000_000),
    },
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
      heartbeatMs: r.int("INSTANCE_HEARTBEAT_MS", 10_000, 100, 600_000),
      deadAfterMs: r.int("INSTANCE_DEAD_AFTER_MS", 60_000, 300, 86_400_000),
    },
  };
  if (config.recovery.deadAfterMs < 3 * config.recovery.heartbeatMs) {
    // two missed heartbeats (a slow database, a GC pause) must not make a live peer look dead
    r.problems.push("INSTANCE_DEAD_AFTER_MS must be at least 3 times INSTANCE_HEARTBEAT_MS");
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(config.cluster.name)) {
    r.problems.push("CLUSTER_NAME must be 1-64 letters, digits, '_' or '-' (it prefixes NATS subjects)");
  }
  if (config.cluster.natsUrl !== undefined && !/^postgres(ql)?:/.test(config.database.url ?? "")) {
    // every coordinator of a cluster reads and writes the same accounts, nodes and tasks: one PostgreSQL server
    r.problems.push("NATS_URL (a cluster) needs DATABASE_URL: the coordinators of a cluster share one PostgreSQL server, not an embedded PGlite each");
  }
  if (config.workers > 1 && (config.cluster.natsUrl === undefined || !/^postgres(ql)?:/.test(config.database.url ?? ""))) {
    // workers are coordinators of one cluster: without NATS each would see only its own nodes, and PGlite is one process
    r.problems.push(`WORKERS=${config.workers} needs NATS_URL and a PostgreSQL DATABASE_URL: the workers are a cluster sharing nodes over NATS and one database`);
  }
  if (config.cluster.deadAfterMs < 2 * config.cluster.viewMs) {
    // one late view (a GC pause, a busy NATS) must not make a live peer look dead
    r.problems.push("CLUSTER_DEAD_AFTER_MS must be at least 2 times CLUSTER_VIEW_MS");
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}
