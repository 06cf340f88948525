// The cluster settings: NATS_URL switches cluster mode on; names and timings are checked at start.
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../config.ts";

const problems = (env: Record<string, string>) => {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems;
  }
};

describe("cluster configuration", () => {
  it("is a cluster of one, in process, without NATS_URL", () => {
    expect(loadConfig({}).cluster).toEqual({
      natsUrl: undefined,
      name: "iris",
      viewMs: 1_000,
      deadAfterMs: 3_000,
      assignTimeoutMs: 2_000,
    });
  });

  const database = { DATABASE_URL: "postgres://db/iris" };
  it("takes one or more NATS servers", () => {
    expect(loadConfig({ ...database, NATS_URL: "nats://10.0.0.1:4222, nats://10.0.0.2:4222" }).cluster.natsUrl).toBe(
      "nats://10.0.0.1:4222,nats://10.0.0.2:4222",
    );
  });

  it("needs one PostgreSQL server for the whole cluster", () => {
    expect(problems({ NATS_URL: "nats://nats:4222" })).toEqual([
      "NATS_URL (a cluster) needs DATABASE_URL: the coordinators of a cluster share one PostgreSQL server, not an " +
        "embedded PGlite each",
    ]);
  });

  it.each([
    [
      { ...database, NATS_URL: "http://nats:4222" },
      "NATS_URL must be a comma-separated list of nats:// (or tls://) URLs",
    ],
    [{ ...database, NATS_URL: "not a url" }, "NATS_URL must be a comma-separated list of nats:// URLs"],
    [{ CLUSTER_NAME: "a.b" }, "CLUSTER_NAME must be 1-64 letters, digits, '_' or '-' (it prefixes NATS subjects)"],
    [
      { CLUSTER_VIEW_MS: "1000", CLUSTER_DEAD_AFTER_MS: "1500" },
      "CLUSTER_DEAD_AFTER_MS must be at least 2 times CLUSTER_VIEW_MS",
    ],
  ])("refuses %j", (env, problem) => {
    expect(problems(env)).toEqual([problem]);
  });
});
