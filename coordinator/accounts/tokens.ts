// User session tokens: HS256 JWTs signed with JWT_SECRET (jose), issued at login and refreshed with a cap.
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { errors, jwtVerify, SignJWT } from "jose";
import { USER_ROLES, type UserRole } from "../../common/vocabulary.ts";

/*
 * Sessions slide, with a ceiling. A token lives `lifetimeSeconds` (1 h by default). RefreshToken takes a
 * valid, unexpired token and returns a new one that again lives `lifetimeSeconds`, but never past the
 * session's start (`auth_time`, carried from token to token) plus `maxSessionSeconds` (7 days by default):
 * an active CLI stays signed in for a week, a stolen token is useful for at most an hour unless it is
 * refreshed, and nothing is refreshable forever. An expired token cannot be refreshed; log in again.
 *
 * Claims: sub (user id), role, acc (account id or null), iss, aud, iat, exp, auth_time, jti.
 */

const TOKEN_ISSUER = "iris-coordinator";
const TOKEN_AUDIENCE = "iris";
const DEFAULT_TOKEN_LIFETIME_SECONDS = 3600;
export const DEFAULT_MAX_SESSION_SECONDS = 7 * 24 * 3600;
const ALGORITHM = "HS256";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Who a token speaks for. */
export interface TokenSubject {
  userId: string;
  role: UserRole;
  accountId: string | null;
}

export interface TokenKeyOptions {
  /** JWT_SECRET (at least 32 characters, checked by config.ts). */
  secret: string;
  issuer?: string;
  audience?: string;
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number;
}

export interface IssueTokenOptions extends TokenKeyOptions {
  lifetimeSeconds?: number;
  /** The session this token continues (a refresh); a new session starts now when absent. */
  sessionStartedAt?: Date;
  maxSessionSeconds?: number;
}

export interface IssuedToken {
  token: string;
  expiresAt: Date;
}

export interface VerifiedToken extends TokenSubject {
  issuedAt: Date;
  expiresAt: Date;
  /** When the user last proved their password (the session's start). */
  sessionStartedAt: Date;
}

/** Signs a token for `subject`; its expiry is capped by the session's maximum length. */
export async function issueToken(subject: TokenSubject, options: IssueTokenOptions): Promise<IssuedToken> {
  const now = seconds(options.now?.() ?? Date.now());
  const lifetime = options.lifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS;
  const sessionStart = options.sessionStartedAt ? seconds(options.sessionStartedAt.getTime()) : now;
  const expires = Math.min(now + lifetime, sessionStart + (options.maxSessionSeconds ?? DEFAULT_MAX_SESSION_SECONDS));
  if (expires <= now) {
    throw new ConnectError("the session has reached its maximum length; log in again", Code.Unauthenticated);
  }
  const token = await new SignJWT({ role: subject.role, acc: subject.accountId, auth_time: sessionStart })
    .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
    .setSubject(subject.userId)
    .setIssuer(options.issuer ?? TOKEN_ISSUER)
    .setAudience(options.audience ?? TOKEN_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(expires)
    .setJti(randomUUID())
    .sign(key(options.secret));
  return { token, expiresAt: new Date(expires * 1000) };
}

/**
 * The token's claims once its signature (HS256 only, so `none` and every other alg are refused), expiry,
 * issuer and audience check out. Otherwise a ConnectError Unauthenticated saying only "token expired"
 * (a genuine token past its time) or "invalid token" (everything else): no hint of which check failed.
 */
export async function verifyToken(token: string, options: TokenKeyOptions): Promise<VerifiedToken> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, key(options.secret), {
      algorithms: [ALGORITHM],
      issuer: options.issuer ?? TOKEN_ISSUER,
      audience: options.audience ?? TOKEN_AUDIENCE,
      requiredClaims: ["sub", "iat", "exp"],
      currentDate: new Date(options.now?.() ?? Date.now()),
    }));
  } catch (err) {
    // jose checks the signature before the claims, so only a token we signed can be "expired".
    if (err instanceof errors.JWTExpired)
      throw new ConnectError("token expired", Code.Unauthenticated, undefined, undefined, err);
    throw invalid(err);
  }
  const { sub, role, acc, iat, exp, auth_time: authTime } = payload;
  const accountId = acc ?? null;
  if (
    typeof sub !== "string" ||
    !UUID.test(sub) ||
    !(USER_ROLES as readonly unknown[]).includes(role) ||
    !(accountId === null || (typeof accountId === "string" && UUID.test(accountId))) ||
    typeof authTime !== "number" ||
    authTime > iat!
  ) {
    throw invalid();
  }
  return {
    userId: sub,
    role: role as UserRole,
    accountId: accountId as string | null,
    issuedAt: new Date(iat! * 1000),
    expiresAt: new Date(exp! * 1000),
    sessionStartedAt: new Date(authTime * 1000),
  };
}

/** The token in an `Authorization: Bearer <token>` header value, or an Unauthenticated error naming the header. */
export function bearerToken(authorization: string): string {
  const match = /^Bearer +([A-Za-z0-9_.~+/=-]+) *$/i.exec(authorization);
  if (!match?.[1]) throw new ConnectError('the Authorization header must be "Bearer <token>"', Code.Unauthenticated);
  return match[1];
}

function invalid(cause?: unknown): ConnectError {
  return new ConnectError("invalid token", Code.Unauthenticated, undefined, undefined, cause);
}

function key(secret: string): Uint8Array {
  // A short HMAC key makes every token forgeable by brute force; config.ts enforces this too.
  if (secret.length < 32) throw new Error("the JWT secret must be at least 32 characters long");
  return new TextEncoder().encode(secret);
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}
