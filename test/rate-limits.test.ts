// Chat rate limits over real sockets: a real coordinator, scripted nodes, and every chat entry point (gRPC, Connect,
// SSE, the OpenAI SDK); shared through the database across restarts and between two coordinators.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI, { AuthenticationError, RateLimitError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { hashAccountKey } from "../coordinator/accounts/keys.ts";
import { startCoordinator, type Coordinator } from "../coordinator/app.ts";
import { loadConfig } from "../coordinator/config.ts";
import { createLogger } from "../coordinator/logger.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { createTestDatabase, databaseSource } from "./support/database.ts";
import { connectFailure } from "./support/errors.ts";
import { startScriptedNode, type ScriptedNode } from "./support/scripted-node.ts";

const UNLIMITED_KEY = "7777 1111 2222 3333";
const JWT_SECRET = "rate-limit-tests-secret-of-at-least-32-characters";
const LIMITS = {
  RATE_LIMIT_ANONYMOUS_PER_DAY: "1",
  RATE_LIMIT_ACCOUNT_KEY_PER_DAY: "3",
  RATE_LIMIT_USER_PER_DAY: "2",
  UNLIMITED_ACCOUNT_KEYS: UNLIMITED_KEY,
  JWT_SECRET,
  ADMIN_EMAILS: "admin@iris.test",
  HEARTBEAT_INTERVAL_MS: "200",
  QUEUE_MAX_WAIT_MS: "300",
};
const simple = "Translate 'good morning' to French.";
// needs a PRO node; the tests' nodes are MID, so this request finds no node
const advanced = "Write a Python function that parses ISO dates, and prove it handles leap years.";
const ANONYMOUS_REFUSAL = new RegExp(
  "^rate limit: 1 message per 24 h for anonymous use; next message allowed in 23 h 59 min \\(at " +
    "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\)$",
);

/** A whole-day wait, give or take the test's own seconds. */
const expectDayWait = (seconds: string | null | undefined) => expect(Number(seconds)).toBeGreaterThan(86_300);

/** Chat clients of one coordinator, each request from `ip` (X-Forwarded-For, honoured with TRUST_PROXY). */
function clients(url: string) {
  const grpc = createClient(InferenceService, createGrpcTransport({ baseUrl: url }));
  const connect = createClient(InferenceService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
  const params = (content: string, extra: Record<string, unknown> = {}) => ({
    params: { messages: [{ role: Role.USER, content }], ...extra },
  });
  return {
    /** gRPC server streaming; the answer's text. */
    async chat(
      ip: string,
      options: { content?: string; accountKey?: string; headers?: Record<string, string> } = {},
    ): Promise<string> {
      let text = "";
      const request = params(options.content ?? simple, options.accountKey ? { accountKey: options.accountKey } : {});
      for await (const response of grpc.chat(request, { headers: { "x-forwarded-for": ip, ...options.headers } })) {
        if (response.event.case === "token") text += response.event.value.text;
      }
      return text;
    },
    async unary(
      ip: string,
      headers: Record<string, string> = {},
      transport: "grpc" | "connect" = "grpc",
    ): Promise<string> {
      const client = transport === "grpc" ? grpc : connect;
      return (await client.chatUnary(params(simple), { headers: { "x-forwarded-for": ip, ...headers } })).text;
    },
    sse(ip: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Response> {
      return fetch(`${url}/api/chat/stream`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": ip, ...headers },
        body: JSON.stringify({ messages: [{ role: "user", content: simple }], ...body }),
      });
    },
    openai(ip: string, apiKey = "unused"): OpenAI {
      return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, defaultHeaders: { "x-forwarded-for": ip } });
    },
  };
}

async function completion(openai: OpenAI): Promise<string> {
  const answer = await openai.chat.completions.create({ model: "auto", messages: [{ role: "user", content: simple }] });
  return answer.choices[0]!.message.content ?? "";
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail");
}

/** A coordinator outside startTestCoordinator, for a shared or reused database. */
function coordinatorOn(database: Record<string, string>, extra: Record<string, string> = {}): Promise<Coordinator> {
  const config = loadConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    COORDINATOR_PRIVATE_KEY_PATH: join(mkdtempSync(join(tmpdir(), "iris-limits-")), "coordinator.key"),
    ...LIMITS,
    ...database,
    ...extra,
  });
  return startCoordinator(config, createLogger("silent"));
}

describe("chat rate limits", () => {
  let coordinator: TestCoordinator;
  let nodeKey: string;
  let node: ScriptedNode;
  let api: ReturnType<typeof clients>;
  const accounts = () => createClient(AccountService, createGrpcTransport({ baseUrl: coordinator.url }));

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ ...LIMITS, TRUST_PROXY: "true" });
    nodeKey = (await accounts().generateKey({})).accountKey;
    // an account whose key is in UNLIMITED_ACCOUNT_KEYS (keys are random; this one is planted)
    await coordinator.db
      .insertInto("accounts")
      .values({ key_hash: hashAccountKey(UNLIMITED_KEY.replaceAll(" ", "")) })
      .execute();
    node = startScriptedNode({ baseUrl: coordinator.url, accountKey: nodeKey, nodeId: "mid", maxConcurrentTasks: 8 });
    await node.registered;
    api = clients(coordinator.url);
  });
  afterAll(async () => {
    node?.kill();
    await coordinator?.close();
  });

  it("lets an anonymous address send one message a day, then refuses it on every entry point", async () => {
    const ip = "203.0.113.10";
    const assigned = node.assigns.length;
    expect(await api.chat(ip)).toBe("Hello, world!");

    const streamed = await connectFailure(api.chat(ip));
    expect(streamed.code).toBe(Code.ResourceExhausted);
    expect(streamed.rawMessage).toMatch(ANONYMOUS_REFUSAL);
    expectDayWait(streamed.metadata.get("retry-after"));
    expect((await connectFailure(api.unary(ip))).code).toBe(Code.ResourceExhausted);
    expect((await connectFailure(api.unary(ip, {}, "connect"))).code).toBe(Code.ResourceExhausted);

    const sse = await api.sse(ip);
    expect(sse.status).toBe(429);
    expectDayWait(sse.headers.get("retry-after"));
    const body = (await sse.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      code: "resource_exhausted",
      retry_after_seconds: Number(sse.headers.get("retry-after")),
    });
    expect(body.message).toMatch(ANONYMOUS_REFUSAL);

    const openai = await rejection(completion(api.openai(ip)));
    expect(openai).toBeInstanceOf(RateLimitError);
    expect((openai as RateLimitError).status).toBe(429);
    expect((openai as RateLimitError).message).toMatch(/rate limit: 1 message per 24 h for anonymous use/);
    expectDayWait((openai as RateLimitError).headers.get("retry-after"));
    // refused before the orchestrator: the node saw the one admitted message only
    expect(node.assigns.length).toBe(assigned + 1);
  });

  it("lets an account key send three messages a day, whichever entry point carries it", async () => {
    const ip = "203.0.113.20";
    const key = (await accounts().generateKey({})).accountKey;
    expect(await api.chat(ip, { accountKey: key })).toBe("Hello, world!"); // ChatParams.account_key
    expect(await api.unary(ip, { "x-iris-account-key": key }, "connect")).toBe("Hello, world!"); // header
    const sse = await api.sse(ip, { account_key: key }); // SSE body
    expect(sse.status).toBe(200);
    expect(await sse.text()).toContain("event: done");

    const fourth = await rejection(completion(api.openai(ip, key.replaceAll(" ", "")))); // OpenAI bearer
    expect(fourth).toBeInstanceOf(RateLimitError);
    expect((fourth as RateLimitError).message).toMatch(
      /rate limit: 3 messages per 24 h with an account key; next message allowed in 23 h 59 min/,
    );
    const header = await connectFailure(api.chat(ip, { headers: { "x-iris-account-key": key } }));
    expect(header.code).toBe(Code.ResourceExhausted);

    // the address's anonymous allowance is its own: a placeholder API key is anonymous, an unknown key is not
    expect(await completion(api.openai(ip, "unused"))).toBe("Hello, world!");
    expect((await connectFailure(api.chat(ip))).rawMessage).toMatch(ANONYMOUS_REFUSAL);
    expect(await rejection(completion(api.openai(ip, "0000 0000 0000 0001")))).toBeInstanceOf(AuthenticationError);
  });

  it("never refuses a key listed in UNLIMITED_ACCOUNT_KEYS", async () => {
    const ip = "203.0.113.30";
    for (let i = 0; i < 3; i++) {
      expect(await completion(api.openai(ip, UNLIMITED_KEY))).toBe("Hello, world!");
      expect(await api.chat(ip, { accountKey: UNLIMITED_KEY })).toBe("Hello, world!");
    }
    const account = await coordinator.db
      .selectFrom("accounts")
      .select("id")
      .where("key_hash", "=", hashAccountKey(UNLIMITED_KEY.replaceAll(" ", "")))
      .executeTakeFirstOrThrow();
    const rows = await coordinator.db
      .selectFrom("chat_admissions")
      .select("subject")
      .where("subject", "=", `account:${account.id}`)
      .execute();
    expect(rows).toEqual([]);
  });

  it("gives signed-in users their own limit, and admins none", async () => {
    const ip = "203.0.113.40";
    const user = (await accounts().register({ email: "limits@iris.test", password: "correct horse battery staple" }))
      .token!;
    const bearer = { authorization: `Bearer ${user.accessToken}` };
    expect(await api.chat(ip, { headers: bearer })).toBe("Hello, world!");
    expect(await completion(api.openai(ip, user.accessToken))).toBe("Hello, world!");
    const third = await connectFailure(api.chat(ip, { headers: bearer }));
    expect(third.code).toBe(Code.ResourceExhausted);
    expect(third.rawMessage).toMatch(/^rate limit: 2 messages per 24 h for a signed-in user; /);
    expect((await api.sse(ip, {}, bearer)).status).toBe(429);
    // the user's messages were not the address's
    expect(await api.chat(ip)).toBe("Hello, world!");

    const admin = (await accounts().register({ email: "admin@iris.test", password: "correct horse battery staple" }))
      .token!;
    expect(admin.role).toBe("admin");
    for (let i = 0; i < 2; i++) {
      expect(await api.chat(ip, { headers: { authorization: `Bearer ${admin.accessToken}` } })).toBe("Hello, world!");
      expect(await completion(api.openai(ip, admin.accessToken))).toBe("Hello, world!");
    }
  });

  it("counts IPv6 callers by /64 and honours X-Forwarded-For with TRUST_PROXY", async () => {
    expect(await api.chat("2001:db8:aa:bb::1")).toBe("Hello, world!");
    const sameNetwork = await connectFailure(api.chat("2001:db8:aa:bb:ffff::2"));
    expect(sameNetwork.code).toBe(Code.ResourceExhausted);
    expect(await api.chat("2001:db8:aa:cc::1")).toBe("Hello, world!");
    const subjects = (await coordinator.db.selectFrom("chat_admissions").select("subject").execute()).map(
      (row) => row.subject,
    );
    expect(subjects).toEqual(
      expect.arrayContaining(["ip:2001:0db8:00aa:00bb::/64", "ip:2001:0db8:00aa:00cc::/64", "ip:203.0.113.10"]),
    );
  });

  it("gives a message back when no node could take it", async () => {
    const ip = "203.0.113.50";
    const unserved = await connectFailure(api.chat(ip, { content: advanced }));
    expect(unserved.code).toBe(Code.Unavailable);
    expect(unserved.rawMessage).toMatch(/no node that serves ADVANCED requests/);
    // the same over SSE: refused at once (503, no queued event: no capable node is online), and still nothing charged
    const sse = await api.sse(ip, { difficulty: "advanced" });
    expect(sse.status).toBe(503);
    expect(await sse.json()).toMatchObject({
      code: "unavailable",
      message: expect.stringContaining("no node that serves ADVANCED requests"),
    });
    expect(await api.chat(ip)).toBe("Hello, world!");
    expect((await connectFailure(api.chat(ip))).code).toBe(Code.ResourceExhausted);
  });

  it("ignores X-Forwarded-For without TRUST_PROXY: every caller is the socket's address", async () => {
    const direct = await startTestCoordinator(LIMITS);
    const directNode = startScriptedNode({
      baseUrl: direct.url,
      accountKey: await newAccountKey(direct.url),
      nodeId: "mid",
    });
    try {
      await directNode.registered;
      const directApi = clients(direct.url);
      expect(await directApi.chat("198.51.100.1")).toBe("Hello, world!");
      expect((await connectFailure(directApi.chat("198.51.100.2"))).rawMessage).toMatch(ANONYMOUS_REFUSAL);
      expect((await directApi.sse("198.51.100.3")).status).toBe(429);
      const subjects = await direct.db.selectFrom("chat_admissions").select("subject").execute();
      expect(subjects).toEqual([{ subject: "ip:127.0.0.1" }]);
    } finally {
      directNode.kill();
      await direct.close();
    }
  });

  it("keeps the count across a coordinator restart on the same database", async () => {
    // a server database, or PGlite on disk (in-memory PGlite would die with the coordinator)
    const server = databaseSource().kind === "postgres" ? await createTestDatabase() : undefined;
    const database: Record<string, string> = server
      ? { DATABASE_URL: server.url }
      : { DATABASE_URL: "", DATA_DIR: mkdtempSync(join(tmpdir(), "iris-limits-data-")) };
    try {
      const first = await coordinatorOn(database);
      const firstNode = startScriptedNode({
        baseUrl: first.url,
        accountKey: await newAccountKey(first.url),
        nodeId: "mid",
      });
      try {
        await firstNode.registered;
        expect(await clients(first.url).chat("192.0.2.7")).toBe("Hello, world!");
      } finally {
        firstNode.kill();
        await first.close();
      }
      const second = await coordinatorOn(database);
      try {
        const refused = await connectFailure(clients(second.url).chat("192.0.2.7"));
        expect(refused.code).toBe(Code.ResourceExhausted);
        expect(refused.rawMessage).toMatch(
          /^rate limit: 1 message per 24 h for anonymous use; next message allowed in 23 h 5\d min/,
        );
      } finally {
        await second.close();
      }
    } finally {
      await server?.close();
    }
  });

  const shared = databaseSource().kind === "postgres";
  (shared ? it : it.skip)(
    shared
      ? "shares the limits between two coordinators on one database, exactly, under a race"
      : "shares the limits between two coordinators on one database (skipped: needs a PostgreSQL server; in-memory " +
          "PGlite belongs to one process)",
    async () => {
      const second = await coordinatorOn(
        { DATABASE_URL: coordinator.config.database.url! },
        { TRUST_PROXY: "true", COORDINATOR_INSTANCE: "second" },
      );
      const secondNode = startScriptedNode({
        baseUrl: second.url,
        accountKey: nodeKey,
        nodeId: "mid-b",
        maxConcurrentTasks: 8,
      });
      try {
        await secondNode.registered;
        const secondApi = clients(second.url);
        expect(await api.chat("203.0.113.60")).toBe("Hello, world!");
        expect((await connectFailure(secondApi.chat("203.0.113.60"))).rawMessage).toMatch(ANONYMOUS_REFUSAL);

        const key = (await accounts().generateKey({})).accountKey;
        const race = await Promise.allSettled(
          Array.from({ length: 8 }, (_, i) =>
            (i % 2 === 0 ? api : secondApi).unary("203.0.113.61", { "x-iris-account-key": key }),
          ),
        );
        expect(race.filter((result) => result.status === "fulfilled")).toHaveLength(3);
        const refused = race.flatMap((result) =>
          result.status === "rejected" ? [connectFailure(Promise.reject(result.reason))] : [],
        );
        expect((await Promise.all(refused)).map((err) => err.code)).toEqual(Array(5).fill(Code.ResourceExhausted));
      } finally {
        secondNode.kill();
        await second.close();
      }
    },
  );
});
