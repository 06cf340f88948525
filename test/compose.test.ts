// compose.yaml stays consistent with the code, since no Docker engine runs it here: every variable a service sets
// is one the coordinator or the agent reads, the cluster's coordinators share what docs/cluster.md says they must,
// and the proxy sends traffic to services that exist.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { root } from "./support/cli-process.ts";

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  profiles?: string[];
  depends_on?: Record<string, unknown>;
}

const source = (path: string) => readFileSync(join(root, path), "utf8");
// the config readers name each variable as a string literal argument: r.string("NODE_ID"), r.int("PORT", …)
const variablesRead = (...paths: string[]) =>
  new Set(paths.flatMap((path) => [...source(path).matchAll(/\(\s*"([A-Z][A-Z0-9_]+)"/g)].map((m) => m[1]!)));
/** coordinator/config.ts and the sections it composes (coordinator/config/*.ts). */
const coordinatorConfigFiles = () => [
  "coordinator/config.ts",
  ...readdirSync(join(root, "coordinator/config"))
    .filter((name) => name.endsWith(".ts") && !name.includes(".test."))
    .map((name) => `coordinator/config/${name}`),
];

describe("compose.yaml", () => {
  // merge keys (<<: *coordinator) as compose applies them
  const compose = parse(source("compose.yaml"), { merge: true }) as {
    services: Record<string, Service>;
    volumes: Record<string, unknown>;
  };
  const services = compose.services;
  const coordinators = Object.entries(services).filter(([name]) => name.startsWith("coordinator-"));
  const coordinatorReads = variablesRead(...coordinatorConfigFiles());
  const agentReads = variablesRead("agent/config.ts");

  it(
    "runs the cluster: postgres, nats with JetStream kept in a volume, two coordinators, a proxy, an optional " +
      "agent",
    () => {
      expect(Object.keys(services).sort()).toEqual([
        "agent",
        "coordinator-1",
        "coordinator-2",
        "nats",
        "postgres",
        "proxy",
      ]);
      expect(services.nats!.command).toContain("-js");
      expect(services.nats!.volumes?.some((v) => v.startsWith("nats-data:"))).toBe(true);
      expect(services.agent!.profiles).toEqual(["agent"]);
      expect(services.proxy!.ports).toEqual(["8080:8080"]);
      for (const [, service] of coordinators) expect(service.ports).toBeUndefined(); // one published port: the proxy's
    },
  );

  it("sets only variables the coordinator reads on the coordinators, and only the agent's on the agent", () => {
    expect(coordinators).toHaveLength(2);
    for (const [name, service] of coordinators) {
      const unknown = Object.keys(service.environment ?? {}).filter((v) => !coordinatorReads.has(v));
      expect(unknown, name).toEqual([]);
    }
    const unknown = Object.keys(services.agent!.environment ?? {}).filter((v) => !agentReads.has(v));
    expect(unknown).toEqual([]);
  });

  it("gives the coordinators one database, one NATS, one cluster key and names of their own (docs/cluster.md)", () => {
    const envs = coordinators.map(([, service]) => service.environment!);
    for (const shared of ["DATABASE_URL", "NATS_URL", "CLUSTER_NAME", "COORDINATOR_PRIVATE_KEY_PATH"]) {
      expect(new Set(envs.map((env) => env[shared])).size, shared).toBe(1);
      expect(envs[0]![shared], shared).toBeTruthy();
    }
    expect(new Set(envs.map((env) => env.COORDINATOR_INSTANCE)).size).toBe(2);
    const keyDir = envs[0]!.COORDINATOR_PRIVATE_KEY_PATH!.replace(/\/[^/]+$/, "");
    for (const [name, service] of coordinators) {
      expect(
        service.volumes?.some((v) => v.endsWith(`:${keyDir}`) && compose.volumes[v.split(":")[0]!] !== undefined),
        name,
      ).toBe(true);
    }
    expect(envs[0]!.NATS_URL).toMatch(/^nats:\/\/nats:/);
    expect(envs[0]!.DATABASE_URL).toMatch(/@postgres:5432\//);
  });

  it("points the agent at both coordinators and the proxy at both, on the port they listen on", () => {
    const port = coordinators[0]![1].environment!.PORT;
    const urls = services.agent!.environment!.COORDINATOR_URL!.split(",");
    expect(urls.sort()).toEqual(coordinators.map(([name]) => `http://${name}:${port}`).sort());
    const haproxy = source("deploy/haproxy.cfg");
    const servers = [...haproxy.matchAll(/^\s*server\s+\S+\s+([a-z0-9-]+):(\d+)\s+proto h2/gm)].map(
      (m) => `${m[1]}:${m[2]}`,
    );
    expect(servers.sort()).toEqual(coordinators.map(([name]) => `${name}:${port}`).sort());
    expect(services.proxy!.volumes).toContain("./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro");
  });

  it("builds an image that holds the agent as well as the coordinator", () => {
    const dockerfile = source("Dockerfile");
    for (const folder of ["coordinator", "agent", "tui", "common", "gen", "migrations"])
      expect(dockerfile).toContain(`COPY ${folder} ./${folder}`);
  });
});
