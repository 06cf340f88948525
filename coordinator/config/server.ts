// The coordinator's server settings from the environment: the port and its protocols, connection limits, the
// database, where data and keys live, and the log level.
import type { EnvReader } from "../../common/env.ts";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
const logLevels: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** What one client connection may hold, and for how long (docs/operations-limits.md, "Connections"). */
export interface ConnectionLimits {
  /** HTTP/1.1: a request's head must arrive within this (HTTP_HEADERS_TIMEOUT_MS). */
  headersTimeoutMs: number;
  /**
   * A request's body must arrive within this from its start; client- and bidi-streaming RPCs are exempt
   * (HTTP_REQUEST_TIMEOUT_MS).
   */
  requestTimeoutMs: number;
  /** A connection with no request or stream in progress for this long is closed (HTTP_IDLE_TIMEOUT_MS). */
  idleTimeoutMs: number;
  /** Streams one HTTP/2 connection may have open, advertised in SETTINGS (HTTP2_MAX_CONCURRENT_STREAMS). */
  http2MaxConcurrentStreams: number;
  /** Open connections per client (TCP peer) address; 0: no cap (MAX_CONNECTIONS_PER_ADDRESS). */
  maxConnectionsPerAddress: number;
}

export interface ServerSettings {
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
  coordinatorPrivateKeyPath: string;
}

export function readServerSettings(r: EnvReader): ServerSettings {
  const certPath = r.string("TLS_CERT_PATH");
  const keyPath = r.string("TLS_KEY_PATH");
  if ((certPath === undefined) !== (keyPath === undefined))
    r.problem("TLS_CERT_PATH and TLS_KEY_PATH must be set together (or neither)");
  const trustProxy = r.bool("TRUST_PROXY", false);
  const dataDir = r.string("DATA_DIR", "data");
  return {
    server: {
      host: r.string("HOST", "0.0.0.0"),
      port: r.int("PORT", 8080, 0, 65535),
      ...(certPath && keyPath ? { tls: { certPath, keyPath } } : {}),
      maxMessageBytes: r.int("MAX_MESSAGE_BYTES", 16 * 1024 * 1024, 1024, 256 * 1024 * 1024),
      shutdownTimeoutMs: r.int("SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
      trustProxy,
      connections: readConnectionLimits(r, trustProxy),
    },
    database: {
      url: r.url("DATABASE_URL", ["postgres:", "postgresql:", "memory:"]),
      poolSize: r.int("DATABASE_POOL_SIZE", 10, 1, 1000),
    },
    dataDir,
    logLevel: r.oneOf("LOG_LEVEL", "info", logLevels),
    coordinatorPrivateKeyPath: r.string("COORDINATOR_PRIVATE_KEY_PATH", `${dataDir}/coordinator.key`),
  };
}

function readConnectionLimits(r: EnvReader, trustProxy: boolean): ConnectionLimits {
  const headersTimeoutMs = r.int("HTTP_HEADERS_TIMEOUT_MS", 10_000, 100, 600_000);
  const requestTimeoutMs = r.int("HTTP_REQUEST_TIMEOUT_MS", 60_000, 100, 3_600_000);
  if (headersTimeoutMs > requestTimeoutMs)
    r.problem("HTTP_HEADERS_TIMEOUT_MS must not be above HTTP_REQUEST_TIMEOUT_MS");
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    idleTimeoutMs: r.int("HTTP_IDLE_TIMEOUT_MS", 65_000, 100, 3_600_000),
    http2MaxConcurrentStreams: r.int("HTTP2_MAX_CONCURRENT_STREAMS", 100, 1, 10_000),
    // behind a trusted proxy every connection comes from the proxy's address: no cap unless one is asked for
    maxConnectionsPerAddress: r.int("MAX_CONNECTIONS_PER_ADDRESS", trustProxy ? 0 : 64, 0, 1_000_000),
  };
}
