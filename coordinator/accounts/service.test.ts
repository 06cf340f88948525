// AccountService's user methods through a real Connect router with the auth and validation interceptors.
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { Code, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../../gen/iris/v1/account_pb.ts";
import { connectFailure } from "../../test/support/errors.ts";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { createLogger } from "../logger.ts";
import { clientAddressKey } from "../request-context.ts";
import { createAuthInterceptor } from "./auth.ts";
import { accountService, type AccountServiceDeps } from "./service.ts";
import { DEFAULT_MAX_SESSION_SECONDS, verifyToken } from "./tokens.ts";

const SECRET = "service-test-secret-long-enough-0123456789ab";
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const PASSWORD = "correct horse battery staple";
const newEmail = () => `user-${randomBytes(4).toString("hex")}@example.com`;

// What server.ts does from the socket, done from a header so tests can pick the client's address.
const testAddress: Interceptor = (next) => async (req) => {
  req.contextValues.set(clientAddressKey, req.header.get("x-test-client-address") ?? "");
  return next(req);
};

describe.each(testEngines())("AccountService users on $name", ({ engine }) => {
  let database: TestDatabase;
  let clock = T0;
  const logLines: string[] = [];
  const logger = createLogger(
    "debug",
    new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  );

  function client(overrides: Partial<AccountServiceDeps> = {}) {
    const deps: AccountServiceDeps = {
      db: database.db,
      jwt: { secret: SECRET, lifetimeSeconds: 3600 },
      adminEmails: ["root@example.com"],
      logger,
      now: () => clock,
      passwordParams: { ln: 10, r: 8, p: 1 },
      ...overrides,
    };
    const auth = createAuthInterceptor({ db: database.db, jwtSecret: deps.jwt.secret, now: () => clock });
    const transport = createRouterTransport((router) => router.service(AccountService, accountService(deps)), {
      router: { interceptors: [testAddress, auth, createValidateInterceptor()] },
    });
    return createClient(AccountService, transport);
  }
  const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    database = await createTestDatabase({ engine });
  });
  afterAll(async () => {
    await database?.close();
  });

  it("registers and logs in, returning a verifiable token for the same user", async () => {
    clock = T0;
    const email = newEmail();
    const { token } = await client().register({ email, password: PASSWORD });
    expect(token).toMatchObject({ role: "user", expiresAtUnixMs: BigInt(T0 + 3_600_000) });
    const claims = await verifyToken(token!.accessToken, { secret: SECRET, now: () => clock });
    expect(claims.userId).toBe(token!.userId);

    const login = await client().login({ email: email.toUpperCase(), password: PASSWORD });
    expect(login.token).toMatchObject({ userId: token!.userId, role: "user" });
  });

  it("gives the same code and message for a wrong password and an unknown email, over the wire", async () => {
    const email = newEmail();
    await client().register({ email, password: PASSWORD });
    const wrong = await connectFailure(client().login({ email, password: "not the password" }));
    const unknown = await connectFailure(client().login({ email: newEmail(), password: "not the password" }));
    expect([wrong.code, wrong.rawMessage]).toEqual([Code.Unauthenticated, "email or password is wrong"]);
    expect([unknown.code, unknown.rawMessage]).toEqual([wrong.code, wrong.rawMessage]);
  });

  it("answers AlreadyExists for a taken email and InvalidArgument naming the field for a short password", async () => {
    const email = newEmail();
    await client().register({ email, password: PASSWORD });
    expect((await connectFailure(client().register({ email, password: PASSWORD }))).code).toBe(Code.AlreadyExists);
    const short = await connectFailure(client().register({ email: newEmail(), password: "123456789" }));
    expect(short.code).toBe(Code.InvalidArgument);
    expect(short.rawMessage).toMatch(/password/);
  });

  it("throttles by client address over the wire, with a retry-after header", async () => {
    clock = T0;
    const headers = { "x-test-client-address": "203.0.113.77" };
    for (let i = 0; i < 5; i++)
      await connectFailure(client().login({ email: newEmail(), password: "guess" }, { headers }));
    const refused = await connectFailure(client().login({ email: newEmail(), password: "guess" }, { headers }));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.metadata.get("retry-after")).toBe("900");
  });

  it("refreshes a valid token: new expiry, same session, and the role ADMIN_EMAILS gives now", async () => {
    clock = T0;
    const email = newEmail();
    const { token } = await client().register({ email, password: PASSWORD });
    clock = T0 + 30 * 60_000;
    const refreshed = (await client({ adminEmails: [email] }).refreshToken({}, bearer(token!.accessToken))).token!;
    expect(refreshed.expiresAtUnixMs).toBe(BigInt(clock + 3_600_000));
    expect(refreshed.role).toBe("admin");
    const claims = await verifyToken(refreshed.accessToken, { secret: SECRET, now: () => clock });
    expect(claims).toMatchObject({ userId: token!.userId, role: "admin", sessionStartedAt: new Date(T0) });
  });

  it("refuses to refresh an expired token, a missing one, and past the session's maximum", async () => {
    clock = T0;
    const { token } = await client().register({ email: newEmail(), password: PASSWORD });
    clock = T0 + 3_600_000;
    const expired = await connectFailure(client().refreshToken({}, bearer(token!.accessToken)));
    expect([expired.code, expired.rawMessage]).toEqual([Code.Unauthenticated, "token expired"]);
    const missing = await connectFailure(client().refreshToken({}));
    expect(missing.code).toBe(Code.Unauthenticated);
    expect(missing.rawMessage).toMatch(/Authorization: Bearer/);

    // Refresh every 50 minutes: the session ends DEFAULT_MAX_SESSION_SECONDS after the login, not later.
    clock = T0;
    let current = token!;
    let refreshes = 0;
    for (;;) {
      clock += 50 * 60_000;
      const result = await client()
        .refreshToken({}, bearer(current.accessToken))
        .catch((err: unknown) => err);
      if (!("token" in (result as object))) {
        expect(result).toMatchObject({ code: Code.Unauthenticated });
        break;
      }
      current = (result as { token: typeof current }).token;
      expect(Number(current.expiresAtUnixMs)).toBeLessThanOrEqual(T0 + DEFAULT_MAX_SESSION_SECONDS * 1000);
      refreshes++;
    }
    expect(clock).toBeGreaterThanOrEqual(T0 + DEFAULT_MAX_SESSION_SECONDS * 1000);
    expect(refreshes).toBe(Math.floor((DEFAULT_MAX_SESSION_SECONDS * 1000) / (50 * 60_000)));
  }, 60_000);

  it(
    "answers FailedPrecondition for user methods without JWT_SECRET, creating nothing, and still serves " + "keys",
    async () => {
      const noSecret = client({ jwt: { secret: undefined } });
      const email = newEmail();
      const expected = [Code.FailedPrecondition, "JWT_SECRET is not configured on this coordinator"];
      const register = await connectFailure(noSecret.register({ email, password: PASSWORD }));
      expect([register.code, register.rawMessage]).toEqual(expected);
      const login = await connectFailure(noSecret.login({ email, password: PASSWORD }));
      expect([login.code, login.rawMessage]).toEqual(expected);
      const rows = await database.db.selectFrom("users").select("id").where("email", "=", email).execute();
      expect(rows).toEqual([]);
      const { accountKey } = await noSecret.generateKey({});
      expect((await noSecret.verifyKey({ accountKey })).valid).toBe(true);
    },
  );

  it("keeps passwords and tokens out of the users table and out of the logs", async () => {
    clock = T0;
    const email = newEmail();
    const password = `pw-${randomBytes(8).toString("hex")}`;
    const { token } = await client().register({ email, password });
    const login = await client().login({ email, password });
    await connectFailure(client().login({ email, password: `${password}-wrong` }));
    const users = await database.db.selectFrom("users").selectAll().execute();
    const table = JSON.stringify(users);
    const logs = logLines.join("");
    for (const secret of [password, token!.accessToken, login.token!.accessToken]) {
      expect(table).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
    expect(logs).not.toContain(email);
    expect(users.find((row) => row.email === email)?.password_hash).toMatch(/^\$scrypt\$ln=10,r=8,p=1\$/);
    expect(logs).toContain("user logged in");
  });
});
