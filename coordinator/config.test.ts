// Configuration: defaults, parsing, and a clear message naming each wrong variable.
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  it("gives working defaults for an empty environment (embedded database, port 8080)", () => {
    const config = loadConfig({});
    expect(config.server).toMatchObject({ host: "0.0.0.0", port: 8080, trustProxy: false });
    expect(config.server.tls).toBeUndefined();
    expect(config.database).toEqual({ url: undefined, poolSize: 10 });
    expect(config.rateLimits).toEqual({
      anonymousPerDay: 1,
      accountKeyPerDay: 3,
      userPerDay: 100,
      unlimitedAccountKeys: [],
    });
  });

  it("reads every value it is given", () => {
    const config = loadConfig({
      PORT: "9090",
      DATABASE_URL: "postgres://iris:secret@db:5432/iris",
      DATABASE_POOL_SIZE: "25",
      TRUST_PROXY: "yes",
      TLS_CERT_PATH: "/c.pem",
      TLS_KEY_PATH: "/k.pem",
      UNLIMITED_ACCOUNT_KEYS: "1234 5678 9012 3456, 1111222233334444",
      LOG_LEVEL: "debug",
    });
    expect(config.server.port).toBe(9090);
    expect(config.server.trustProxy).toBe(true);
    expect(config.server.tls).toEqual({ certPath: "/c.pem", keyPath: "/k.pem" });
    expect(config.database).toEqual({ url: "postgres://iris:secret@db:5432/iris", poolSize: 25 });
    expect(config.rateLimits.unlimitedAccountKeys).toEqual(["1234567890123456", "1111222233334444"]);
    expect(config.logLevel).toBe("debug");
  });

  const wrong: [Record<string, string>, RegExp][] = [
    [{ PORT: "abc" }, /PORT must be a whole number from 0 to 65535 \(got "abc"\)/],
    [{ PORT: "70000" }, /PORT must be a whole number/],
    [{ PORT: "80.5" }, /PORT must be a whole number/],
    [{ DATABASE_POOL_SIZE: "0" }, /DATABASE_POOL_SIZE must be a whole number from 1/],
    [{ DATABASE_URL: "mysql://x@y/z" }, /DATABASE_URL must start with postgres:\/\//],
    [{ DATABASE_URL: "not a url" }, /DATABASE_URL is not a valid URL/],
    [{ TRUST_PROXY: "maybe" }, /TRUST_PROXY must be true or false/],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL must be one of/],
    [{ TLS_CERT_PATH: "/c.pem" }, /TLS_CERT_PATH and TLS_KEY_PATH must be set together/],
    [{ JWT_SECRET: "short" }, /JWT_SECRET must be at least 32 characters/],
    [{ UNLIMITED_ACCOUNT_KEYS: "12345" }, /UNLIMITED_ACCOUNT_KEYS must be a comma-separated list/],
    [
      { ADMIN_EMAILS: "root@example.com, not-an-email" },
      /ADMIN_EMAILS must be a comma-separated list of email addresses \(not: \["not-an-email"\]\)/,
    ],
  ];
  for (const [env, message] of wrong) {
    it(`refuses ${JSON.stringify(env)}`, () => {
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(message);
    });
  }

  it("reads ADMIN_EMAILS lowercased and without duplicates, empty by default", () => {
    expect(loadConfig({}).adminEmails).toEqual([]);
    expect(loadConfig({ ADMIN_EMAILS: " Root@Example.com,ops@iris.local, root@example.com " }).adminEmails).toEqual([
      "root@example.com",
      "ops@iris.local",
    ]);
  });

  it("lists every wrong variable at once and never echoes a URL that may hold a password", () => {
    try {
      loadConfig({ PORT: "x", HEARTBEAT_INTERVAL_MS: "-1", DATABASE_URL: "ftp://u:hunter2@h/d" });
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems).toHaveLength(3);
      expect((err as Error).message).not.toContain("hunter2");
    }
  });
});

describe("loadConfig: division modes and spot checks", () => {
  it("has the documented defaults", () => {
    expect(loadConfig({}).division).toEqual({
      consensusDefaultNodes: 3,
      consensusSimilarity: 0.9,
      subtasksMaxParts: 6,
      contextChunkTokens: 3072,
      contextOverlapTokens: 128,
      contextNoteTokens: 512,
      contextMaxChunks: 512,
      spotCheckFraction: 0.05,
      spotCheckSuspendAfter: 3,
      spotCheckMaxWaitMs: 30_000,
      canaryIntervalMs: 600_000,
    });
  });

  it("reads decimals and whole numbers within their ranges", () => {
    const env = {
      CONSENSUS_DEFAULT_NODES: "5",
      CONSENSUS_SIMILARITY: "0.85",
      SPOT_CHECK_FRACTION: ".5",
      CANARY_INTERVAL_MS: "0",
      SPOT_CHECK_SUSPEND_AFTER: "1",
    };
    expect(loadConfig(env).division).toMatchObject({
      consensusDefaultNodes: 5,
      consensusSimilarity: 0.85,
      spotCheckFraction: 0.5,
      canaryIntervalMs: 0,
      spotCheckSuspendAfter: 1,
    });
  });

  it.each([
    [{ CONSENSUS_DEFAULT_NODES: "1" }, /CONSENSUS_DEFAULT_NODES must be a whole number from 2 to 9/],
    [{ CONSENSUS_SIMILARITY: "1.5" }, /CONSENSUS_SIMILARITY must be a number from 0.5 to 1 \(got "1.5"\)/],
    [{ SPOT_CHECK_FRACTION: "5%" }, /SPOT_CHECK_FRACTION must be a number from 0 to 1/],
    [{ CONTEXT_CHUNK_TOKENS: "100" }, /CONTEXT_CHUNK_TOKENS must be a whole number from 256/],
  ])("refuses %j", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it("reads the recovery settings, and refuses a dead-after shorter than three heartbeats", () => {
    expect(loadConfig({}).recovery).toEqual({
      journalMaxWaiting: 100_000,
      journalEndFlushMs: 10,
      heartbeatMs: 10_000,
      deadAfterMs: 60_000,
    });
    const env = {
      TASK_JOURNAL_MAX_WAITING: "500",
      TASK_JOURNAL_END_FLUSH_MS: "0",
      INSTANCE_HEARTBEAT_MS: "200",
      INSTANCE_DEAD_AFTER_MS: "1000",
    };
    expect(loadConfig(env).recovery).toEqual({
      journalMaxWaiting: 500,
      journalEndFlushMs: 0,
      heartbeatMs: 200,
      deadAfterMs: 1_000,
    });
    expect(() => loadConfig({ INSTANCE_HEARTBEAT_MS: "30000" })).toThrow(
      /INSTANCE_DEAD_AFTER_MS must be at least 3 times INSTANCE_HEARTBEAT_MS/,
    );
  });
});

describe("loadConfig: connection limits", () => {
  it("has the documented defaults (docs/operations-limits.md)", () => {
    expect(loadConfig({}).server.connections).toEqual({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      idleTimeoutMs: 65_000,
      http2MaxConcurrentStreams: 100,
      maxConnectionsPerAddress: 64,
    });
  });

  it("drops the per-address cap behind a trusted proxy unless one is set", () => {
    expect(loadConfig({ TRUST_PROXY: "true" }).server.connections.maxConnectionsPerAddress).toBe(0);
    expect(
      loadConfig({ TRUST_PROXY: "true", MAX_CONNECTIONS_PER_ADDRESS: "500" }).server.connections
        .maxConnectionsPerAddress,
    ).toBe(500);
  });

  const wrong: [Record<string, string>, RegExp][] = [
    [
      { HTTP_HEADERS_TIMEOUT_MS: "20000", HTTP_REQUEST_TIMEOUT_MS: "10000" },
      /HTTP_HEADERS_TIMEOUT_MS must not be above HTTP_REQUEST_TIMEOUT_MS/,
    ],
    [{ HTTP_IDLE_TIMEOUT_MS: "0" }, /HTTP_IDLE_TIMEOUT_MS must be a whole number from 100/],
    [{ HTTP2_MAX_CONCURRENT_STREAMS: "0" }, /HTTP2_MAX_CONCURRENT_STREAMS must be a whole number from 1/],
    [{ MAX_CONNECTIONS_PER_ADDRESS: "-1" }, /MAX_CONNECTIONS_PER_ADDRESS must be a whole number from 0/],
  ];
  for (const [env, message] of wrong) {
    it(`refuses ${JSON.stringify(env)}`, () => {
      expect(() => loadConfig(env)).toThrow(message);
    });
  }
});

describe("loadConfig: WORKERS", () => {
  const cluster = { DATABASE_URL: "postgres://db/iris", NATS_URL: "nats://nats:4222" };
  it.each([
    [{}, 1],
    [{ WORKERS: "1" }, 1],
    [{ ...cluster, WORKERS: "4" }, 4],
    [{ ...cluster, WORKERS: "auto" }, 6],
    [{ ...cluster, WORKERS: "AUTO" }, 6],
    [{ WORKERS: "auto" }, 1, 1],
  ] as [Record<string, string>, number, number?][])("%j → %i workers", (env, workers, cores = 6) => {
    expect(loadConfig(env, cores).workers).toBe(workers);
  });

  it.each(["0", "-2", "1.5", "two", "1025"])("refuses WORKERS=%s", (value) => {
    expect(() => loadConfig({ ...cluster, WORKERS: value })).toThrow(/WORKERS must be a whole number from 1/);
  });

  it.each([
    [{ WORKERS: "2" }],
    [{ WORKERS: "2", NATS_URL: "nats://nats:4222" }],
    [{ WORKERS: "2", DATABASE_URL: "postgres://db/iris" }],
    [{ WORKERS: "2", DATABASE_URL: "memory://", NATS_URL: "nats://nats:4222" }],
    [{ WORKERS: "auto", DATABASE_URL: "postgres://db/iris" }],
  ])("refuses several workers without NATS_URL and a PostgreSQL DATABASE_URL: %j", (env) => {
    expect(() => loadConfig(env, 4)).toThrow(/WORKERS=\d+ needs NATS_URL and a PostgreSQL DATABASE_URL/);
  });
});
