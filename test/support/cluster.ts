// Several coordinators in one test process, sharing one database and one coordinator key: a cluster over the real
// NATS (a CLUSTER_NAME of its own per call) or over one in-process LocalNetwork.
import { mkdtempSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { LocalBus, LocalNetwork } from "../../coordinator/cluster/bus-local.ts";
import { Role } from "../../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatResponse } from "../../gen/iris/v1/inference_pb.ts";
import { startTestCoordinator, type TestCoordinator } from "./coordinator.ts";
import { createTestDatabase, databaseSource, type TestDatabase } from "./database.ts";
import { testNatsUrl, uniqueClusterName } from "./nats.ts";

export interface TestCluster {
  coordinators: TestCoordinator[];
  database: TestDatabase;
  /** Env every coordinator got (CLUSTER_NAME, the shared key path...): a coordinator process joins with it. */
  env: Record<string, string>;
  /** Starts one more coordinator named `instance` in the cluster. */
  add(instance: string, env?: Record<string, string>): Promise<TestCoordinator>;
  close(): Promise<void>;
}

/** Why a cluster test cannot run here ("" when it can): its coordinators must share one PostgreSQL server. */
export function clusterSkipReason(): string {
  return databaseSource().kind === "pglite"
    ? " (skipped: a cluster shares one PostgreSQL server; this run has only PGlite)"
    : "";
}

/**
 * A chat sent to the coordinator at `baseUrl` over gRPC, its events collected as they come; `done` resolves with
 * undefined when the answer ended, or with the error that ended it (a coordinator killed under it).
 */
export function chatting(
  baseUrl: string,
  content: string,
): { events: ChatResponse["event"][]; done: Promise<unknown> } {
  const inference = createClient(InferenceService, createGrpcTransport({ baseUrl }));
  const events: ChatResponse["event"][] = [];
  const done = (async () => {
    for await (const response of inference.chat({ params: { messages: [{ role: Role.USER, content }] } }))
      events.push(response.event);
  })().then(
    () => undefined,
    (err: unknown) => err,
  );
  return { events, done };
}

/** Fast cluster timings for tests: views every 100 ms, a silent peer dead after 500 ms. */
export const fastCluster = { CLUSTER_VIEW_MS: "100", CLUSTER_DEAD_AFTER_MS: "500" };

export async function startTestCluster(
  instances: string[],
  options: { bus: "nats" | "local"; env?: Record<string, string> },
): Promise<TestCluster> {
  const database = await createTestDatabase();
  const network = new LocalNetwork();
  const env: Record<string, string> = {
    COORDINATOR_PRIVATE_KEY_PATH: join(mkdtempSync(join(tmpdir(), "iris-cluster-")), "coordinator.key"),
    CLUSTER_NAME: uniqueClusterName(),
    ...fastCluster,
    ...(options.bus === "nats" ? { NATS_URL: testNatsUrl } : {}),
    ...options.env,
  };
  const coordinators: TestCoordinator[] = [];
  const add = async (instance: string, extra: Record<string, string> = {}) => {
    const bus = options.bus === "local" ? new LocalBus(network) : undefined;
    const coordinator = await startTestCoordinator(
      { ...env, COORDINATOR_INSTANCE: instance, ...extra },
      { database, bus },
    );
    coordinators.push(coordinator);
    return coordinator;
  };
  try {
    // one at a time: the first creates the shared key file the others read
    for (const instance of instances) await add(instance);
  } catch (err) {
    await Promise.allSettled(coordinators.map((c) => c.close()));
    await database.close();
    throw err;
  }
  return {
    coordinators,
    database,
    env,
    add,
    async close() {
      await Promise.allSettled(coordinators.map((c) => c.close()));
      await database.close();
    },
  };
}

/** A TCP relay in front of a coordinator; `cut()` breaks every connection through it while the coordinator runs on. */
export interface ConnectionCutter {
  /** http://127.0.0.1:PORT: the coordinator, through the relay. */
  url: string;
  /** Destroys every open connection both ways, as a network fault would; new ones still pass. */
  cut(): void;
  close(): Promise<void>;
}

export async function startConnectionCutter(targetUrl: string): Promise<ConnectionCutter> {
  const target = new URL(targetUrl);
  const open = new Set<Socket>();
  const track = (socket: Socket) => {
    open.add(socket);
    socket.once("close", () => open.delete(socket));
    socket.on("error", () => {});
  };
  const server = createServer((client) => {
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const cut = () => {
    for (const socket of [...open]) socket.destroy();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    cut,
    async close() {
      cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
