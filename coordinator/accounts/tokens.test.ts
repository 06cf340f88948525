// Session tokens: issue and verify, and every way a token can be wrong (expired, forged, other iss/aud/alg, junk).
import { Code } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { connectFailure } from "../../test/support/errors.ts";
import { bearerToken, DEFAULT_MAX_SESSION_SECONDS, issueToken, verifyToken, type TokenSubject } from "./tokens.ts";

const SECRET = "a-test-secret-that-is-long-enough-0123456789";
const OTHER_SECRET = "another-secret-that-is-long-enough-9876543210";
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const subject: TokenSubject = {
  userId: "8a6e0804-2bd0-4672-b79a-d97027f9ebf5",
  role: "admin",
  accountId: "0b0f5a40-3a4c-4b8e-9f59-3c2f9a1e7d21",
};
const at = (ms: number) => () => ms;
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** Signs arbitrary claims with the test secret, for tokens issueToken would never make. */
function sign(claims: Record<string, unknown>, alg = "HS256", secret = SECRET) {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(new TextEncoder().encode(secret));
}
const standardClaims = () => ({
  sub: subject.userId,
  role: "user",
  acc: null,
  iss: "iris-coordinator",
  aud: "iris",
  iat: T0 / 1000,
  exp: T0 / 1000 + 3600,
  auth_time: T0 / 1000,
});

async function rejection(token: string, now = T0) {
  const error = await connectFailure(verifyToken(token, { secret: SECRET, now: at(now) }));
  expect(error.code).toBe(Code.Unauthenticated);
  if (token.length > 8) expect(error.rawMessage).not.toContain(token);
  return error.rawMessage;
}

describe("issueToken / verifyToken", () => {
  it("round trips the subject, with a one-hour expiry by default and the session starting now", async () => {
    const { token, expiresAt } = await issueToken(subject, { secret: SECRET, now: at(T0) });
    expect(expiresAt).toEqual(new Date(T0 + 3_600_000));
    const verified = await verifyToken(token, { secret: SECRET, now: at(T0 + 60_000) });
    expect(verified).toEqual({
      ...subject,
      issuedAt: new Date(T0),
      expiresAt: new Date(T0 + 3_600_000),
      sessionStartedAt: new Date(T0),
    });
    const [header, payload] = token
      .split(".")
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, "base64url").toString()));
    expect(header).toEqual({ alg: "HS256", typ: "JWT" });
    expect(payload).toMatchObject({
      iss: "iris-coordinator",
      aud: "iris",
      sub: subject.userId,
      acc: subject.accountId,
    });
  });

  it("keeps a null account id", async () => {
    const { token } = await issueToken({ ...subject, accountId: null }, { secret: SECRET, now: at(T0) });
    expect((await verifyToken(token, { secret: SECRET, now: at(T0) })).accountId).toBeNull();
  });

  it("says 'token expired' once the expiry has passed (injected clock), not a second before", async () => {
    const { token } = await issueToken(subject, { secret: SECRET, now: at(T0), lifetimeSeconds: 600 });
    await expect(verifyToken(token, { secret: SECRET, now: at(T0 + 599_000) })).resolves.toMatchObject(subject);
    expect(await rejection(token, T0 + 600_000)).toBe("token expired");
  });

  it("caps a refreshed token at the session's maximum length, and refuses past it", async () => {
    const started = new Date(T0);
    const nearEnd = T0 + (DEFAULT_MAX_SESSION_SECONDS - 600) * 1000;
    const { expiresAt } = await issueToken(subject, { secret: SECRET, now: at(nearEnd), sessionStartedAt: started });
    expect(expiresAt).toEqual(new Date(T0 + DEFAULT_MAX_SESSION_SECONDS * 1000));
    const past = T0 + DEFAULT_MAX_SESSION_SECONDS * 1000;
    const error = await connectFailure(
      issueToken(subject, { secret: SECRET, now: at(past), sessionStartedAt: started }),
    );
    expect(error.code).toBe(Code.Unauthenticated);
    expect(error.rawMessage).toMatch(/maximum length; log in again/);
  });

  it("calls a token signed with another secret (forged) invalid, even when it is expired", async () => {
    const { token } = await issueToken(subject, { secret: OTHER_SECRET, now: at(T0) });
    expect(await rejection(token)).toBe("invalid token");
    expect(await rejection(token, T0 + 7_200_000)).toBe("invalid token");
  });

  it("refuses a tampered payload carrying the original signature", async () => {
    const { token } = await issueToken({ ...subject, role: "user" }, { secret: SECRET, now: at(T0) });
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    const forged = `${header}.${b64url({ ...claims, role: "admin" })}.${signature}`;
    expect(await rejection(forged)).toBe("invalid token");
  });

  it("refuses another issuer or audience", async () => {
    const { token: wrongIssuer } = await issueToken(subject, { secret: SECRET, now: at(T0), issuer: "someone-else" });
    expect(await rejection(wrongIssuer)).toBe("invalid token");
    const { token: wrongAudience } = await issueToken(subject, { secret: SECRET, now: at(T0), audience: "not-iris" });
    expect(await rejection(wrongAudience)).toBe("invalid token");
  });

  it("refuses alg none and algorithms other than HS256, even with the right secret", async () => {
    const none = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(standardClaims())}.`;
    expect(await rejection(none)).toBe("invalid token");
    expect(await rejection(await sign(standardClaims(), "HS512"))).toBe("invalid token");
    expect(await rejection(await sign(standardClaims(), "HS384"))).toBe("invalid token");
    // The same claims as HS256 pass, so the algorithm alone made the difference.
    await expect(verifyToken(await sign(standardClaims()), { secret: SECRET, now: at(T0) })).resolves.toMatchObject({
      role: "user",
    });
  });

  it("refuses tokens without an expiry, subject or session start, and with an unknown role", async () => {
    const { exp: _exp, ...noExpiry } = standardClaims();
    expect(await rejection(await sign(noExpiry))).toBe("invalid token");
    const { sub: _sub, ...noSubject } = standardClaims();
    expect(await rejection(await sign(noSubject))).toBe("invalid token");
    const { auth_time: _authTime, ...noSession } = standardClaims();
    expect(await rejection(await sign(noSession))).toBe("invalid token");
    expect(await rejection(await sign({ ...standardClaims(), role: "root" }))).toBe("invalid token");
    expect(await rejection(await sign({ ...standardClaims(), sub: "not-a-uuid" }))).toBe("invalid token");
  });

  for (const garbage of ["", "garbage", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30", "x".repeat(5000)]) {
    it(`calls ${JSON.stringify(garbage.slice(0, 30))} an invalid token`, async () => {
      expect(await rejection(garbage)).toBe("invalid token");
    });
  }

  it("will not sign or verify with a secret shorter than 32 characters", async () => {
    await expect(issueToken(subject, { secret: "short" })).rejects.toThrow(/at least 32 characters/);
  });
});

describe("bearerToken", () => {
  it("takes the token from 'Bearer <token>', any case of the scheme", () => {
    expect(bearerToken("Bearer abc.def.ghi")).toBe("abc.def.ghi");
    expect(bearerToken("bearer abc.def.ghi")).toBe("abc.def.ghi");
  });

  for (const value of ["", "abc.def.ghi", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a b"]) {
    it(`refuses the header value ${JSON.stringify(value)} naming the header`, () => {
      try {
        bearerToken(value);
        expect.unreachable();
      } catch (err) {
        expect(err).toMatchObject({
          code: Code.Unauthenticated,
          rawMessage: 'the Authorization header must be "Bearer <token>"',
        });
      }
    });
  }
});
