// Database faults: which errors mean "unavailable", how RPCs report them, and that the real pg pool survives a
// backend terminated while its client is checked out idle in a transaction.
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, databaseSource, type TestDatabase } from "../../test/support/database.ts";
import { AccountService } from "../../gen/iris/v1/account_pb.ts";
import { InferenceService } from "../../gen/iris/v1/inference_pb.ts";
import { chatStreamError } from "../http/chat-stream-error.ts";
import { openAiError } from "../http/openai-errors.ts";
import { openDatabase } from "./connect.ts";
import { CommitUnknownError, createDatabaseFaultInterceptor, isDatabaseUnavailable } from "./faults.ts";

const withCode = (code: string, message = "x") => Object.assign(new Error(message), { code });

describe("isDatabaseUnavailable", () => {
  it.each([
    [
      "admin shutdown (pg_terminate_backend)",
      withCode("57P01", "terminating connection due to administrator command"),
      true,
    ],
    ["server starting up", withCode("57P03"), true],
    ["too many connections", withCode("53300"), true],
    ["connection exception class 08", withCode("08006"), true],
    ["commit outcome unknown", new CommitUnknownError("123"), true],
    ["refused", withCode("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:1"), true],
    ["reset", withCode("ECONNRESET"), true],
    ["refused on every address", Object.assign(new AggregateError([withCode("ECONNREFUSED")]), {}), true],
    ["pg's lost connection", new Error("Connection terminated unexpectedly"), true],
    ["pg's broken client", new Error("Client has encountered a connection error and is not queryable"), true],
    ["wrapped in a cause", new Error("cannot open database", { cause: withCode("ECONNREFUSED") }), true],
    ["our own close", new Error("Connection terminated"), false],
    ["unique violation", withCode("23505"), false],
    ["check violation", withCode("23514"), false],
    ["a plain bug", new TypeError("x is undefined"), false],
    ["not an error", "57P01", false],
  ])("%s", (_name, err, expected) => {
    expect(isDatabaseUnavailable(err)).toBe(expected);
  });
});

describe("HTTP routes", () => {
  const terminated = withCode("57P01", "terminating connection due to administrator command");
  it("answer a database fault with 503 on /v1 and /api/chat/stream, and a bug with 500", () => {
    expect(openAiError(terminated, "r1")).toMatchObject({
      status: 503,
      body: { error: { message: "database unavailable: 57P01", code: "service_unavailable" } },
    });
    expect(chatStreamError(terminated, "r1")).toMatchObject({
      status: 503,
      body: { code: "unavailable", message: "database unavailable: 57P01" },
    });
    expect(openAiError(new TypeError("x"), "r1").status).toBe(500);
    expect(chatStreamError(new TypeError("x"), "r1").status).toBe(500);
  });
});

describe("database fault interceptor", () => {
  const terminated = withCode("57P01", "terminating connection due to administrator command");
  const transport = createRouterTransport(
    (router) => {
      router.service(AccountService, {
        generateKey: () => Promise.reject(terminated),
        verifyKey: () => Promise.reject(new Error("a bug, not an outage")),
      });
      router.service(InferenceService, {
        async *chat() {
          yield { event: { case: "token", value: { text: "Hel" } } };
          throw new Error("Connection terminated unexpectedly");
        },
      });
    },
    { router: { interceptors: [createDatabaseFaultInterceptor()] } },
  );

  it("turns a lost database into Unavailable in a unary call, and leaves other failures alone", async () => {
    const accounts = createClient(AccountService, transport);
    const err = ConnectError.from(await accounts.generateKey({}).catch((e: unknown) => e));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe("database unavailable: 57P01");
    const other = ConnectError.from(
      await accounts.verifyKey({ accountKey: "1234567890123456" }).catch((e: unknown) => e),
    );
    expect(other.code).not.toBe(Code.Unavailable);
  });

  it("turns a lost database mid-stream into Unavailable, after the messages already sent", async () => {
    const inference = createClient(InferenceService, transport);
    const received: string[] = [];
    const failure = await (async () => {
      for await (const response of inference.chat({}))
        if (response.event.case === "token") received.push(response.event.value.text);
    })().catch((e: unknown) => ConnectError.from(e));
    expect(received).toEqual(["Hel"]);
    expect(failure?.code).toBe(Code.Unavailable);
    expect(failure?.rawMessage).toBe("database unavailable: Connection terminated unexpectedly");
  });
});

describe.skipIf(databaseSource().kind !== "postgres")("pg pool when a backend is terminated", () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(async () => {
    await test?.close();
  });

  it(
    "survives a client terminated while idle in a transaction: the transaction fails as unavailable, the next query " +
      "works",
    async () => {
      const uncaught: unknown[] = [];
      const onUncaught = (err: unknown) => uncaught.push(err);
      process.on("uncaughtException", onUncaught);
      const opened = await openDatabase({ url: test.url, poolSize: 2, dataDir: "" });
      const admin = new pg.Client({ connectionString: test.url });
      await admin.connect();
      try {
        let began!: (pid: number) => void;
        const pid = new Promise<number>((resolve) => (began = resolve));
        let proceed!: () => void;
        const gate = new Promise<void>((resolve) => (proceed = resolve));
        const transaction = opened.db.transaction().execute(async (tx) => {
          const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(tx);
          began(rows[0]!.pid);
          await gate; // idle in transaction, the client checked out of the pool
          await sql`SELECT 1`.execute(tx);
        });
        await admin.query("SELECT pg_terminate_backend($1)", [await pid]);
        // pg emits 'error' on the checked-out client as soon as the socket closes
        for (
          let i = 0;
          i < 50 && (await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [await pid])).rowCount! > 0;
          i++
        ) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
        proceed();
        const failure = await transaction.then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(isDatabaseUnavailable(failure)).toBe(true);
        expect(uncaught).toEqual([]);
        const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(opened.db);
        expect(rows).toEqual([{ one: 1 }]);
      } finally {
        process.off("uncaughtException", onUncaught);
        await admin.end();
        await opened.close();
      }
    },
  );
});
