// A real coordinator process on a real PostgreSQL that fails under it: backends terminated mid-transaction under chat
// traffic, then a database refusing connections for seconds. The process stays up, calls fail with Unavailable
// while the database is away, and every task record is written once it is back.
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { startCoordinatorProcess } from "./support/coordinator-process.ts";
import { startDatabaseProxy, type DatabaseProxy } from "./support/database-proxy.ts";
import { createTestDatabase, databaseSource, type TestDatabase } from "./support/database.ts";
import { connectFailure } from "./support/errors.ts";
import { startScriptedNode, type ScriptedNode } from "./support/scripted-node.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The iris_task_records_waiting gauge from GET /metrics. */
async function waitingRecords(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return Number(/^iris_task_records_waiting (\d+)$/m.exec(text)?.[1]);
}

describe.skipIf(databaseSource().kind !== "postgres")("coordinator process on a failing database", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /**
   * A database, a coordinator process on `url(database)` and one scripted node whose answers take `delayMs` a token.
   */
  async function network(options: { url?: (database: TestDatabase) => Promise<string>; delayMs?: number } = {}) {
    const database = await createTestDatabase();
    cleanups.push(() => database.close());
    const coordinator = await startCoordinatorProcess({
      DATABASE_URL: await (options.url ?? (async (d) => d.url))(database),
      COORDINATOR_INSTANCE: "faults",
    });
    cleanups.push(() => coordinator.kill());
    const transport = createGrpcTransport({ baseUrl: coordinator.url });
    const accounts = createClient(AccountService, transport);
    const { accountKey } = await accounts.generateKey({});
    const nodeId = `faults-node-${Math.random().toString(16).slice(2, 8)}`;
    const node: ScriptedNode = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId,
      script: () => ({ tokens: ["Bon", "jour", "!"], delayMs: options.delayMs ?? 0 }),
    });
    cleanups.push(() => node.kill());
    await node.registered;
    const inference = createClient(InferenceService, transport);
    const chat = async () => {
      let done = false;
      for await (const response of inference.chat({
        params: { messages: [{ role: 2, content: "Translate 'good morning' to French." }] },
      })) {
        if (response.event.case === "done") done = true;
      }
      return done;
    };
    /** Every task of the database, once `count` are written and none is left queued, assigned or streaming. */
    const settledTasks = async (count: number) => {
      const tasks = () => database.db.selectFrom("tasks").select(["status", "failure_reason"]).execute();
      const settled = async () => {
        const rows = await tasks();
        return rows.length >= count && rows.every((t) => !["queued", "assigned", "streaming"].includes(t.status));
      };
      await expect.poll(settled, { timeout: 15_000 }).toBe(true);
      return tasks();
    };
    return { database, coordinator, accounts, nodeId, chat, settledTasks };
  }

  it(
    "stays up when its backends are terminated mid-transaction and under chat traffic; every finished chat is " +
      "recorded",
    async () => {
      const { database, coordinator, chat, settledTasks, nodeId } = await network();
      expect(await chat()).toBe(true);
      const admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
      cleanups.push(() => admin.end());
      const dbName = new URL(database.url).pathname.slice(1);
      const others = `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`;

      // hold the node's row: the journal's transaction (its FK check) waits on it, its client checked out
      // mid-transaction
      await admin.query("BEGIN");
      await admin.query("SELECT 1 FROM nodes WHERE id = $1 FOR UPDATE", [nodeId]);
      const finished = await Promise.all(Array.from({ length: 5 }, () => chat()));
      let waiting: number[] = [];
      for (let i = 0; i < 100 && waiting.length === 0; i++) {
        await sleep(50);
        waiting = (await admin.query(`${others} AND wait_event_type = 'Lock'`, [dbName])).rows.map(
          (row: { pid: number }) => row.pid,
        );
      }
      expect(waiting.length).toBeGreaterThan(0);
      for (const pid of waiting) await admin.query("SELECT pg_terminate_backend($1)", [pid]);
      await admin.query("COMMIT");

      // then a storm: every backend of the coordinator terminated every 50 ms while chats keep coming
      const outcomes: (boolean | Code)[] = [];
      let storming = true;
      const traffic = (async () => {
        while (storming)
          outcomes.push(await chat().catch((err: unknown) => connectFailure(Promise.reject(err)).then((e) => e.code)));
      })();
      for (let i = 0; i < 40; i++) {
        await admin.query(`SELECT pg_terminate_backend(pid) FROM (${others}) AS s`, [dbName]);
        await sleep(50);
      }
      storming = false;
      await traffic;

      await sleep(500);
      expect(coordinator.alive).toBe(true);
      // a chat either finished or failed with Unavailable: nothing else
      expect(outcomes.filter((o) => o !== true && o !== Code.Unavailable)).toEqual([]);
      expect(await chat()).toBe(true);
      const done = 1 + finished.filter(Boolean).length + outcomes.filter((o) => o === true).length + 1;
      const tasks = await settledTasks(done);
      expect(tasks.filter((t) => t.status === "completed")).toHaveLength(done);
      expect(tasks.filter((t) => t.status !== "completed")).toEqual([]);
    },
  );

  it(
    "stays up while the database refuses connections for 3 s: calls fail with Unavailable, a chat in flight " +
      "finishes and is recorded",
    async () => {
      let proxy!: DatabaseProxy;
      const proxied = async (database: TestDatabase) => {
        proxy = await startDatabaseProxy(database.url);
        cleanups.push(() => proxy.close());
        return proxy.url;
      };
      const { coordinator, accounts, chat, settledTasks } = await network({ url: proxied, delayMs: 400 });
      expect(await chat()).toBe(true);

      const inFlight = chat();
      await sleep(300);
      await proxy.cut();
      const refused = [await connectFailure(accounts.generateKey({})), await connectFailure(chat())];
      for (const err of refused) {
        expect(err.code).toBe(Code.Unavailable);
        expect(err.rawMessage).toMatch(/^database unavailable: /);
      }
      expect(await inFlight).toBe(true);
      await sleep(3_000 - 300);
      expect(coordinator.alive).toBe(true);
      expect(coordinator.logs.some((line) => line.msg === "task records waiting for the database")).toBe(true);
      // the finished chat's records wait in memory, and the gauge says so
      expect(await waitingRecords(coordinator.url)).toBeGreaterThan(0);

      await proxy.restore();
      expect((await accounts.generateKey({})).accountKey).toMatch(/^\d{4} \d{4} \d{4} \d{4}$/);
      expect(await chat()).toBe(true);
      const tasks = await settledTasks(3);
      expect(tasks.map((t) => t.status)).toEqual(["completed", "completed", "completed"]);
      expect(await waitingRecords(coordinator.url)).toBe(0);
    },
  );
});
