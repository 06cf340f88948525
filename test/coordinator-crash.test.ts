// A coordinator process killed with SIGKILL while streams are in flight: its tasks are not left assigned/streaming
// forever. Its next start under the same name fails them with a reason; so does a peer once its heartbeat is stale.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "./support/coordinator-process.ts";
import { createTestDatabase, databaseSource, type TestDatabase } from "./support/database.ts";
import { startScriptedNode, type ScriptedNode } from "./support/scripted-node.ts";

const OPEN = ["queued", "assigned", "streaming"];
const liveness = { INSTANCE_HEARTBEAT_MS: "200", INSTANCE_DEAD_AFTER_MS: "1000" };

describe.skipIf(databaseSource().kind !== "postgres")("coordinator killed with streams in flight", () => {
  let database: TestDatabase;
  const coordinators: CoordinatorProcess[] = [];
  const nodes: ScriptedNode[] = [];
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    for (const node of nodes.splice(0)) node.kill();
    for (const coordinator of coordinators.splice(0)) await coordinator.kill();
  });
  afterAll(async () => {
    await database?.close();
  });

  async function coordinator(instance: string): Promise<CoordinatorProcess> {
    const started = await startCoordinatorProcess({
      DATABASE_URL: database.url,
      COORDINATOR_INSTANCE: instance,
      ...liveness,
    });
    coordinators.push(started);
    return started;
  }

  /** Starts `count` slow chats on a fresh node of `target`; resolves once their rows say streaming. */
  async function streamsInFlight(target: CoordinatorProcess, count: number): Promise<string[]> {
    const transport = createGrpcTransport({ baseUrl: target.url });
    const { accountKey } = await createClient(AccountService, transport).generateKey({});
    const nodeId = `crash-node-${randomBytes(3).toString("hex")}`;
    const node = startScriptedNode({
      baseUrl: target.url,
      accountKey,
      nodeId,
      maxConcurrentTasks: count,
      script: () => ({ tokens: Array.from({ length: 100 }, (_, i) => `t${i} `), delayMs: 200 }),
    });
    nodes.push(node);
    await node.registered;
    const inference = createClient(InferenceService, transport);
    for (let i = 0; i < count; i++) {
      void (async () => {
        for await (const _ of inference.chat({
          params: { messages: [{ role: 2, content: "Translate 'good morning' to French." }] },
        }));
      })().catch(() => {}); // the coordinator dies under it
    }
    const streaming = () =>
      database.db
        .selectFrom("tasks")
        .select("id")
        .where("node_id", "=", nodeId)
        .where("status", "=", "streaming")
        .execute();
    await expect.poll(async () => (await streaming()).length, { timeout: 15_000 }).toBe(count);
    return (await streaming()).map((row) => row.id);
  }

  const rows = (ids: string[]) =>
    database.db.selectFrom("tasks").select(["id", "status", "failure_reason"]).where("id", "in", ids).execute();

  it("fails the 10 tasks a SIGKILLed coordinator left streaming when it starts again under its name", async () => {
    const name = `crash-${randomBytes(3).toString("hex")}`;
    const first = await coordinator(name);
    const ids = await streamsInFlight(first, 10);
    await first.kill();
    // nothing ended them: this is what stayed dangling forever before recovery existed
    expect((await rows(ids)).every((row) => OPEN.includes(row.status))).toBe(true);

    const again = await coordinator(name);
    const ended = await rows(ids);
    expect(ended.map((row) => row.status)).toEqual(ids.map(() => "failed"));
    expect(new Set(ended.map((row) => row.failure_reason))).toEqual(
      new Set([`coordinator ${name} stopped before the task ended`]),
    );
    expect(
      again.logs.some(
        (line) =>
          line.msg === "ended the tasks a previous run of this coordinator left unfinished" && line.ended === 10,
      ),
    ).toBe(true);
  });

  it("fails the tasks of a SIGKILLed peer once its heartbeat is stale", async () => {
    const dead = await coordinator(`peer-a-${randomBytes(3).toString("hex")}`);
    const survivor = await coordinator(`peer-b-${randomBytes(3).toString("hex")}`);
    const ids = await streamsInFlight(dead, 3);
    await dead.kill();
    await expect
      .poll(async () => (await rows(ids)).map((row) => row.status), { timeout: 10_000 })
      .toEqual(["failed", "failed", "failed"]);
    expect(survivor.alive).toBe(true);
    expect(
      survivor.logs.some(
        (line) => line.msg === "ended the unfinished tasks of a coordinator that stopped heartbeating",
      ),
    ).toBe(true);
  });
});
