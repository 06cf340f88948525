// Trust over real sockets: credentials, the auth policy, a node's reach, secrets kept out of logs and tables,
// SQL metacharacters stored verbatim.
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { NetworkService } from "../gen/iris/v1/network_pb.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { connectFailure } from "./support/errors.ts";
import { startScriptedNode } from "./support/scripted-node.ts";

const jwtSecret = "a-test-secret-that-is-at-least-32-characters-long";
const adminEmail = "root@iris.test";
const password = "correct horse battery staple";

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

describe("trust", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let adminToken: string;
  let userToken: string;
  const client = <T extends Parameters<typeof createClient>[0]>(service: T, token?: string) =>
    createClient(
      service,
      createGrpcTransport({ baseUrl: coordinator.url, interceptors: token ? [bearer(token)] : [] }),
    );

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ JWT_SECRET: jwtSecret, ADMIN_EMAILS: adminEmail });
    const accounts = client(AccountService);
    accountKey = (await accounts.generateKey({})).accountKey;
    adminToken = (await accounts.register({ email: adminEmail, password })).token!.accessToken;
    userToken = (await accounts.register({ email: "O'Brien@iris.test", password })).token!.accessToken;
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  it("refuses wrong, expired and forged tokens with Unauthenticated, even on methods open to anyone", async () => {
    const now = Math.floor(Date.now() / 1000);
    const sign = (secret: string, claims: { exp: number; iss?: string; aud?: string }) =>
      new SignJWT({ role: "admin", acc: null })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject("00000000-0000-0000-0000-000000000000")
        .setIssuedAt(now - 10)
        .setIssuer(claims.iss ?? "iris-coordinator")
        .setAudience(claims.aud ?? "iris")
        .setExpirationTime(claims.exp)
        .sign(new TextEncoder().encode(secret));
    const forged = await sign("someone-elses-secret-of-at-least-32-characters", { exp: now + 600 });
    const expired = await sign(jwtSecret, { exp: now - 60 });
    const wrongAudience = await sign(jwtSecret, { exp: now + 600, aud: "elsewhere" });
    for (const token of ["garbage", forged, expired, wrongAudience, `${adminToken}x`]) {
      const err = await connectFailure(client(NetworkService, token).getStats({}));
      expect(err.code, token.slice(0, 12)).toBe(Code.Unauthenticated);
    }
  });

  it("keeps admin-only methods for admins", async () => {
    expect((await connectFailure(client(NetworkService).listPayouts({}))).code).toBe(Code.Unauthenticated);
    expect((await connectFailure(client(NetworkService, userToken).listPayouts({}))).code).toBe(Code.PermissionDenied);
    await expect(client(NetworkService, adminToken).listPayouts({})).resolves.toBeDefined();
  });

  it("stores SQL metacharacters verbatim and never a password, key or token in clear", async () => {
    const model = `x'); DROP TABLE nodes;-- "quoted" \\ $1 %s`;
    const node = startScriptedNode({ baseUrl: coordinator.url, accountKey, nodeId: "quoting", modelName: model });
    await node.registered;
    node.kill();
    const stored = await coordinator.db
      .selectFrom("nodes")
      .select("model_name")
      .where("id", "=", "quoting")
      .executeTakeFirstOrThrow();
    expect(stored.model_name).toBe(model);
    const rows = await coordinator.db.selectFrom("users").select(["email", "password_hash"]).execute();
    expect(rows.map((r) => r.email)).toContain("o'brien@iris.test");
    for (const row of rows) {
      expect(row.password_hash.startsWith("$scrypt$")).toBe(true);
      expect(row.password_hash).not.toContain(password);
    }
    const tables = await sql`SELECT * FROM accounts, users`.execute(coordinator.db);
    const dump = JSON.stringify(tables.rows, (_key, value: unknown) =>
      typeof value === "bigint" ? String(value) : value,
    );
    expect(dump).not.toContain(accountKey.replaceAll(" ", ""));
    expect(dump).not.toContain(password);
    expect(dump).not.toContain(adminToken);
  });

  it("does not let a node push chunks into a task it was not given", async () => {
    // the intruder registers properly, then sends a chunk for another node's task
    let victimTask = "";
    const victim = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId: "victim",
      tokensPerSecond: 29,
      script: (a) => ((victimTask = a.taskId), { tokens: ["safe", " answer"], delayMs: 50 }),
    });
    await victim.registered;
    const intruder = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId: "intruder",
      tokensPerSecond: 1,
      maxConcurrentTasks: 1,
    });
    await intruder.registered;
    let text = "";
    for await (const response of client(InferenceService).chat({
      params: { messages: [{ role: 2, content: "hi" }] },
    })) {
      if (response.event.case !== "token") continue;
      // the victim has its task by the first token: now the intruder writes into it
      if (text === "") intruder.inject(victimTask, "INJECTED");
      text += response.event.value.text;
    }
    expect(text).toBe("safe answer");
    expect(
      coordinator.logs.some(
        (line) => line.msg === "message for a task this node does not run; ignored" && line.nodeId === "intruder",
      ),
    ).toBe(true);
    victim.kill();
    intruder.kill();
  });

  it(
    "drops a chunk with a malformed task id like any task the node does not run, and keeps serving the " + "node",
    async () => {
      // chunks skip protovalidate (coordinator/validation.ts): they are checked where they are used
      const node = startScriptedNode({ baseUrl: coordinator.url, accountKey, nodeId: "sloppy" });
      await node.registered;
      node.inject("not-a-uuid", "junk");
      await expect
        .poll(() =>
          coordinator.logs.some(
            (line) => line.msg === "message for a task this node does not run; ignored" && line.nodeId === "sloppy",
          ),
        )
        .toBe(true);
      let text = "";
      for await (const response of client(InferenceService).chat({
        params: { messages: [{ role: 2, content: "hi" }] },
      })) {
        if (response.event.case === "token") text += response.event.value.text;
      }
      expect(text).toBe("Hello, world!");
      expect(node.assigns).toHaveLength(1);
      node.kill();
    },
  );

  it("keeps account keys, passwords, tokens and private keys out of every log line", async () => {
    const accounts = client(AccountService);
    await accounts.login({ email: adminEmail, password }).catch(() => undefined);
    await connectFailure(accounts.login({ email: adminEmail, password: "wrong password!!" }));
    await accounts.verifyKey({ accountKey });
    const logs = JSON.stringify(coordinator.logs);
    expect(logs).not.toContain(accountKey.replaceAll(" ", ""));
    expect(logs).not.toContain(accountKey);
    expect(logs).not.toContain(password);
    expect(logs).not.toContain(adminToken);
    expect(logs).not.toContain("PRIVATE KEY");
  });
});
