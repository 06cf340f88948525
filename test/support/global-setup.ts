// Vitest global setup: picks the run's PostgreSQL once (DATABASE_URL, else Docker, else PGlite) and provides it.
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { StartedPostgreSqlContainer } from "@testcontainers/postgresql";
import type { TestProject } from "vitest/node";
import { redactUrl } from "../../coordinator/db/connect.ts";

/** Where test databases come from; test/support/database.ts turns it into one database per file. */
export type DatabaseSource = { kind: "postgres"; url: string; label: string } | { kind: "pglite"; label: string };

declare module "vitest" {
  export interface ProvidedContext {
    databaseSource: DatabaseSource;
  }
}

const POSTGRES_IMAGE = "postgres:16-alpine";
// A Docker engine that answered a ping may still need to pull the image; past this we give up on it.
const CONTAINER_START_TIMEOUT_MS = 120_000;
const DOCKER_PING_TIMEOUT_MS = 2_000;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { source, teardown } = await chooseSource();
  console.log(`[iris tests] PostgreSQL: ${source.label}`);
  project.provide("databaseSource", source);
  return teardown;
}

interface Chosen {
  source: DatabaseSource;
  teardown: () => Promise<void>;
}

async function chooseSource(): Promise<Chosen> {
  const url = process.env.DATABASE_URL?.trim();
  if (url) {
    // Fail the run once, clearly, rather than every test file with a connection error.
    await assertReachable(url);
    return { source: { kind: "postgres", url, label: `DATABASE_URL ${describeUrl(url)}` }, teardown: async () => {} };
  }
  const docker = await startContainer();
  if ("container" in docker) {
    const container = docker.container;
    const containerUrl = container.getConnectionUri();
    return {
      source: {
        kind: "postgres",
        url: containerUrl,
        label: `testcontainers ${POSTGRES_IMAGE} ${describeUrl(containerUrl)}`,
      },
      teardown: async () => {
        await container.stop();
      },
    };
  }
  return {
    source: { kind: "pglite", label: `embedded PGlite (no DATABASE_URL; ${docker.reason})` },
    teardown: async () => {},
  };
}

function describeUrl(url: string): string {
  const redacted = redactUrl(url);
  return redacted === url ? url : `${redacted} (password redacted)`;
}

async function assertReachable(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query("select 1");
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`[iris tests] DATABASE_URL ${redactUrl(url)} does not answer: ${reason}`, { cause: error });
  } finally {
    await client.end().catch(() => {});
  }
}

async function startContainer(): Promise<{ container: StartedPostgreSqlContainer } | { reason: string }> {
  if (!dockerMayExist()) return { reason: "no Docker" };
  // Loaded only here, so runs without Docker never pay for importing testcontainers.
  const { getContainerRuntimeClient } = await import("testcontainers");
  try {
    await withTimeout(getContainerRuntimeClient(), DOCKER_PING_TIMEOUT_MS, "Docker did not answer");
  } catch (error) {
    return { reason: `no Docker: ${firstLine(error)}` };
  }
  const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
  const starting = new PostgreSqlContainer(POSTGRES_IMAGE).withStartupTimeout(CONTAINER_START_TIMEOUT_MS).start();
  try {
    return { container: await withTimeout(starting, CONTAINER_START_TIMEOUT_MS, "container did not start in time") };
  } catch (error) {
    // If it comes up after we gave up, do not leave it running.
    starting.then((late) => late.stop()).catch(() => {});
    return { reason: `Docker container failed: ${firstLine(error)}` };
  }
}

/** A cheap look for a Docker engine before loading testcontainers, which probes far more slowly. */
function dockerMayExist(): boolean {
  if (process.env.DOCKER_HOST) return true;
  const home = homedir();
  const candidates = [
    "/var/run/docker.sock",
    "/run/docker.sock",
    process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, "docker.sock") : undefined,
    join(home, ".docker", "run", "docker.sock"),
    join(home, ".docker", "desktop", "docker.sock"),
    join(home, ".testcontainers.properties"),
  ];
  return candidates.some((path) => path !== undefined && existsSync(path));
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "unknown error";
}
