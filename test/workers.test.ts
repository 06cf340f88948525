// WORKERS=2 (issue #12): one coordinator process forks two workers that share one port through node:cluster and
// join through NATS; both serve, a chat reaches a node whichever worker took it, and SIGTERM ends them all cleanly.
import { createServer } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { clusterSkipReason, fastCluster } from "./support/cluster.ts";
import { newAccountKey } from "./support/coordinator.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "./support/coordinator-process.ts";
import { createTestDatabase, type TestDatabase } from "./support/database.ts";
import { natsAnswers, natsSkipReason, testNatsUrl, uniqueClusterName } from "./support/nats.ts";
import { ScriptedNodes } from "./support/scripted-node.ts";

const nats = await natsAnswers();
const skip = clusterSkipReason() || natsSkipReason(nats);

/** A port free right now: the workers must all listen on one the test knows. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip !== "")(`WORKERS=2: two coordinator processes on one port${skip}`, () => {
  let database: TestDatabase;
  let primary: CoordinatorProcess;
  let accountKey: string;
  const nodes = new ScriptedNodes(() => ({ baseUrl: primary.url, accountKey }));
  const listening = () =>
    primary.logs.filter((event) => typeof event.msg === "string" && event.msg.startsWith("coordinator listening"));

  beforeAll(async () => {
    database = await createTestDatabase({ migrate: false }); // the workers migrate it, both at once
    const port = await freePort();
    primary = await startCoordinatorProcess({
      WORKERS: "2",
      PORT: String(port),
      NATS_URL: testNatsUrl,
      CLUSTER_NAME: uniqueClusterName("workers"),
      ...fastCluster,
      DATABASE_URL: database.url,
      COORDINATOR_INSTANCE: "pool",
    });
    await vi.waitFor(() => expect(listening()).toHaveLength(2), { timeout: 20_000 });
    accountKey = await newAccountKey(primary.url);
  }, 60_000);
  afterAll(async () => {
    nodes.killAll();
    await primary?.kill();
    await database?.close();
  });

  it("runs two workers on the one port, each a coordinator instance of its own", async () => {
    const workers = listening();
    expect(new Set(workers.map((event) => event.port))).toEqual(new Set([Number(new URL(primary.url).port)]));
    expect(new Set(workers.map((event) => event.pid)).size).toBe(2);
    await vi.waitFor(
      async () => {
        const rows = await database.db
          .selectFrom("coordinator_instances")
          .select("instance")
          .orderBy("instance")
          .execute();
        expect(rows.map((row) => row.instance)).toEqual(["pool-w1", "pool-w2"]);
      },
      { timeout: 10_000 },
    );
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${primary.url}/healthz`, { headers: { connection: "close" } });
      expect(response.status).toBe(200);
    }
  });

  it("serves chats through the port with a node connected through the same port, whichever worker takes " +
    "them", async () => {
    await nodes.start({
      nodeId: "behind-the-pool",
      maxConcurrentTasks: 4,
      script: () => ({ tokens: ["bon", "jour"] }),
    });
    // a fresh connection each: the primary hands connections to the workers in turn
    const answers = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: primary.url }));
        let text = "";
        for await (const response of inference.chat({
          params: { messages: [{ role: 2, content: "Translate 'good morning' to French." }] },
        })) {
          if (response.event.case === "token") text += response.event.value.text;
        }
        return text;
      }),
    );
    expect(answers).toEqual(["bonjour", "bonjour", "bonjour", "bonjour"]);
  }, 30_000);

  it("restarts a worker that dies, under the same instance name", async () => {
    const victim = listening()[0]!.pid as number;
    process.kill(victim, "SIGKILL");
    await vi.waitFor(() => expect(listening()).toHaveLength(3), { timeout: 15_000 });
    const restart = primary.logs.find((event) => event.msg === "worker died unexpectedly; restarting");
    expect(restart).toMatchObject({ signal: "SIGKILL", restartInMs: 1_000 });
    expect(["pool-w1", "pool-w2"]).toContain(restart!.worker);
    expect((await fetch(`${primary.url}/healthz`)).status).toBe(200);
  }, 20_000);

  it("ends every worker on SIGTERM to the primary, and exits 0", async () => {
    const pids = listening()
      .map((event) => event.pid as number)
      .filter(alive);
    expect(pids).toHaveLength(2);
    const started = Date.now();
    primary.child.kill("SIGTERM");
    expect(await primary.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(pids.filter(alive)).toEqual([]);
  }, 15_000);
});
