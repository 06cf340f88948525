// The auth interceptor through a real Connect router: every policy entry against every kind of caller, and key caching.
import type { DescService } from "@bufbuild/protobuf";
import { Code, type CallOptions, createClient, createRouterTransport, type HandlerContext } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../../gen/iris/v1/account_pb.ts";
import { InferenceService } from "../../gen/iris/v1/inference_pb.ts";
import { NetworkService } from "../../gen/iris/v1/network_pb.ts";
import { NodeService } from "../../gen/iris/v1/node_pb.ts";
import { connectFailure } from "../../test/support/errors.ts";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { type AccessLevel, accessLevelFor, authPolicy, createAuthInterceptor } from "./auth.ts";
import { hashAccountKey } from "./keys.ts";
import { type Principal, principalKey } from "./principal.ts";
import { createAccount } from "./store.ts";
import { issueToken } from "./tokens.ts";

const SECRET = "auth-test-secret-long-enough-0123456789abcdef";
const FORGER_SECRET = "not-the-coordinator-secret-0123456789abcdef";
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const USER_ID = "8a6e0804-2bd0-4672-b79a-d97027f9ebf5";
const ADMIN_ID = "3f1f6c1e-4f0e-4d43-9a52-5a8f6a3c2b10";
const services: DescService[] = [NodeService, InferenceService, AccountService, NetworkService];

/** A service whose every unary method records the principal it was called with and answers an empty message. */
function recording(service: DescService, seen: Principal[]) {
  const impl: Record<string, unknown> = {};
  for (const method of service.methods) {
    impl[method.localName] =
      method.methodKind === "unary"
        ? async (_request: unknown, ctx: HandlerContext) => {
            seen.push(ctx.values.get(principalKey));
            return {};
          }
        : async function* () {};
  }
  return impl;
}

type UnaryCall = (request: object, options: CallOptions) => Promise<unknown>;

describe("authPolicy", () => {
  it("names only methods that exist in iris.v1, and defaults to anyone", () => {
    const known = new Set(services.flatMap((service) => service.methods.map((m) => `${service.typeName}/${m.name}`)));
    for (const method of Object.keys(authPolicy).filter((key) => key !== "default")) expect(known).toContain(method);
    expect(authPolicy.default).toBe("anyone");
    expect(accessLevelFor(authPolicy, "iris.v1.InferenceService/Chat")).toBe("anyone");
    expect(accessLevelFor(authPolicy, "default")).toBe("anyone");
    expect(accessLevelFor(authPolicy, "iris.v1.NetworkService/ClearNode")).toBe("admin");
  });
});

describe.each(testEngines())("auth interceptor on $name", ({ engine }) => {
  let database: TestDatabase;
  let clock = T0;
  let accountKey: string;
  let accountId: string;
  const seen: Principal[] = [];
  const credentials: Record<string, Record<string, string>> = {};

  function transport(jwtSecret: string | undefined) {
    return createRouterTransport(
      (router) => {
        router.service(AccountService, recording(AccountService, seen));
        router.service(NetworkService, recording(NetworkService, seen));
      },
      { router: { interceptors: [createAuthInterceptor({ db: database.db, jwtSecret, now: () => clock })] } },
    );
  }
  /** Calls a unary method; `jwtSecret: null` plays a coordinator without JWT_SECRET. */
  function call(method: string, headers: Record<string, string>, jwtSecret: string | null = SECRET) {
    const [serviceName, methodName] = method.split("/") as [string, string];
    const service = services.find((s) => s.typeName === serviceName)!;
    const client = createClient(service, transport(jwtSecret ?? undefined)) as unknown as Record<string, UnaryCall>;
    const localName = service.methods.find((m) => m.name === methodName)!.localName;
    return client[localName]!({}, { headers });
  }
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    database = await createTestDatabase({ engine });
    ({ key: accountKey, id: accountId } = await createAccount(database.db));
    const sign = (userId: string, role: "user" | "admin", secret = SECRET) =>
      issueToken({ userId, role, accountId: null }, { secret, now: () => T0 }).then((t) => t.token);
    credentials.anonymous = {};
    credentials.account = { "x-iris-account-key": accountKey };
    credentials.user = bearer(await sign(USER_ID, "user"));
    credentials.admin = bearer(await sign(ADMIN_ID, "admin"));
    credentials.forged = bearer(await sign(ADMIN_ID, "admin", FORGER_SECRET));
  });
  afterAll(async () => {
    await database?.close();
  });

  const principals: Record<string, Principal> = {
    anonymous: { kind: "anonymous" },
    account: { kind: "account", accountId: "" },
    user: { kind: "user", userId: USER_ID, role: "user", accountId: null },
    admin: { kind: "user", userId: ADMIN_ID, role: "admin", accountId: null },
  };
  // What each caller gets at each access level: a principal, or the error code.
  const expected: Record<AccessLevel, Record<string, "ok" | Code>> = {
    anyone: { anonymous: "ok", account: "ok", user: "ok", admin: "ok", forged: Code.Unauthenticated },
    user: {
      anonymous: Code.Unauthenticated,
      account: Code.Unauthenticated,
      user: "ok",
      admin: "ok",
      forged: Code.Unauthenticated,
    },
    admin: {
      anonymous: Code.Unauthenticated,
      account: Code.Unauthenticated,
      user: Code.PermissionDenied,
      admin: "ok",
      forged: Code.Unauthenticated,
    },
  };
  const entries = Object.entries(authPolicy).map(([method, level]) =>
    method === "default" ? (["iris.v1.NetworkService/GetStats", level] as const) : ([method, level] as const),
  );

  for (const [method, level] of entries) {
    for (const caller of ["anonymous", "account", "user", "admin", "forged"]) {
      const outcome = expected[level][caller]!;
      it(
        `${method} (${level}) with ${caller} credentials ` + `→ ${outcome === "ok" ? "served" : Code[outcome]}`,
        async () => {
          clock = T0 + 1000;
          seen.length = 0;
          if (outcome === "ok") {
            await call(method, credentials[caller]!);
            const principal = caller === "account" ? { kind: "account", accountId } : principals[caller];
            expect(seen).toEqual([principal]);
          } else {
            const error = await connectFailure(call(method, credentials[caller]!));
            expect(error.code).toBe(outcome);
            expect(seen).toEqual([]);
            for (const value of Object.values(credentials[caller]!))
              expect(error.message).not.toContain(value.slice(7));
          }
        },
      );
    }
  }

  it("says 'token expired' for an expired token, even on a method anyone may call", async () => {
    clock = T0 + 3_600_000;
    const error = await connectFailure(call("iris.v1.NetworkService/GetStats", credentials.user!));
    expect([error.code, error.rawMessage]).toEqual([Code.Unauthenticated, "token expired"]);
  });

  it("refuses malformed Authorization values and tokens when JWT_SECRET is not configured", async () => {
    clock = T0 + 1000;
    const basic = await connectFailure(
      call("iris.v1.NetworkService/GetStats", { authorization: "Basic dXNlcjpwYXNz" }),
    );
    expect([basic.code, basic.rawMessage]).toEqual([
      Code.Unauthenticated,
      'the Authorization header must be "Bearer <token>"',
    ]);
    const noSecret = await connectFailure(call("iris.v1.NetworkService/GetStats", credentials.admin!, null));
    expect(noSecret.code).toBe(Code.Unauthenticated);
    await expect(call("iris.v1.NetworkService/GetStats", {}, null)).resolves.toBeDefined();
  });

  it("refuses two credentials at once with InvalidArgument", async () => {
    clock = T0 + 1000;
    const error = await connectFailure(
      call("iris.v1.NetworkService/GetStats", { ...credentials.account, ...credentials.user }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/Authorization or x-iris-account-key, not both/);
  });

  it("refuses malformed and unknown account keys, naming the header and never echoing the key", async () => {
    const malformed = await connectFailure(call("iris.v1.NetworkService/GetStats", { "x-iris-account-key": "12345" }));
    expect(malformed.code).toBe(Code.Unauthenticated);
    expect(malformed.rawMessage).toMatch(/^x-iris-account-key must be 16 digits/);
    const unknown = "9999 0000 1111 2222";
    const error = await connectFailure(call("iris.v1.NetworkService/GetStats", { "x-iris-account-key": unknown }));
    expect([error.code, error.rawMessage]).toEqual([
      Code.Unauthenticated,
      "unknown or revoked account key (x-iris-account-key)",
    ]);
    // Not cached as unknown: once the key exists it works at once.
    await database.db
      .insertInto("accounts")
      .values({ key_hash: hashAccountKey(unknown.replaceAll(" ", "")) })
      .execute();
    await expect(
      call("iris.v1.NetworkService/GetStats", { "x-iris-account-key": "9999000011112222" }),
    ).resolves.toBeDefined();
  });

  it("caches a found key for 60 s: a revoked key keeps working until then, and not after", async () => {
    const { key, id } = await createAccount(database.db);
    const interceptor = createAuthInterceptor({ db: database.db, jwtSecret: SECRET, now: () => clock });
    const cached = createRouterTransport((router) => router.service(NetworkService, recording(NetworkService, seen)), {
      router: { interceptors: [interceptor] },
    });
    const client = createClient(NetworkService, cached);
    const headers = { "x-iris-account-key": key };
    clock = T0;
    await client.getStats({}, { headers });
    await database.db.updateTable("accounts").set({ revoked_at: new Date() }).where("id", "=", id).execute();
    clock = T0 + 59_000;
    await expect(client.getStats({}, { headers })).resolves.toBeDefined();
    clock = T0 + 60_000;
    expect((await connectFailure(client.getStats({}, { headers }))).code).toBe(Code.Unauthenticated);
  });
});
