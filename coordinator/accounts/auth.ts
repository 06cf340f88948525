// The auth interceptor: turns a request's credential into a Principal and enforces each method's access level.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import { hashAccountKey, normalizeAccountKey } from "./keys.ts";
import { principalKey, type Principal } from "./principal.ts";
import { AccountKeyCache, findAccountId } from "./store.ts";
import { bearerToken, verifyToken } from "./tokens.ts";

/*
 * Credentials (one per request; both at once is InvalidArgument, since which one counts would be a guess):
 *   Authorization: Bearer <jwt>          → { kind: "user", userId, role, accountId } (role from the token)
 *   x-iris-account-key: <16 digits>      → { kind: "account", accountId }
 *   neither                              → { kind: "anonymous" }
 * A credential that is present but wrong (forged, expired, malformed, unknown or revoked key) is
 * Unauthenticated on every method, "anyone" ones included: a client that means to be someone must hear
 * that it is not, rather than be served as a stranger. Messages never contain the token or the key.
 *
 * Access levels: "anyone" lets every principal in; "user" and "admin" need a user token: without one
 * (anonymous or account key) the call is Unauthenticated, with a non-admin user's token on an "admin"
 * method it is PermissionDenied.
 */

export type AccessLevel = "anyone" | "user" | "admin";

/** Method path ("iris.v1.Service/Method") → access level; `default` covers every method not listed. */
export type AuthPolicy = { readonly default: AccessLevel } & { readonly [method: string]: AccessLevel };

export const authPolicy: AuthPolicy = {
  "iris.v1.NetworkService/ListPayouts": "admin",
  "iris.v1.NetworkService/ClearNode": "admin",
  "iris.v1.AccountService/RefreshToken": "user",
  default: "anyone",
};

export const ACCOUNT_KEY_HEADER = "x-iris-account-key";

export function accessLevelFor(policy: AuthPolicy, method: string): AccessLevel {
  return Object.hasOwn(policy, method) && method !== "default" ? policy[method]! : policy.default;
}

export interface AuthInterceptorOptions {
  db: Kysely<Database>;
  /** JWT_SECRET; undefined means bearer tokens cannot be valid here (they are refused, not ignored). */
  jwtSecret: string | undefined;
  policy?: AuthPolicy;
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number;
  /** How long a found account key is trusted without asking the database (default 60 s). */
  accountCacheMs?: number;
}

export function createAuthInterceptor(options: AuthInterceptorOptions): Interceptor {
  const policy = options.policy ?? authPolicy;
  const now = options.now ?? Date.now;
  const accounts = new AccountKeyCache(options.accountCacheMs ?? 60_000, now);

  async function accountPrincipal(value: string): Promise<Principal> {
    let digits: string;
    try {
      digits = normalizeAccountKey(value, ACCOUNT_KEY_HEADER);
    } catch (err) {
      throw new ConnectError(ConnectError.from(err).rawMessage, Code.Unauthenticated);
    }
    const digest = hashAccountKey(digits);
    let accountId = accounts.get(digest);
    if (accountId === undefined) {
      accountId = await findAccountId(options.db, digits);
      if (accountId === undefined) {
        throw new ConnectError(`unknown or revoked account key (${ACCOUNT_KEY_HEADER})`, Code.Unauthenticated);
      }
      accounts.set(digest, accountId);
    }
    return { kind: "account", accountId };
  }

  async function userPrincipal(authorization: string): Promise<Principal> {
    if (options.jwtSecret === undefined) {
      throw new ConnectError(
        "this coordinator accepts no bearer tokens: JWT_SECRET is not configured",
        Code.Unauthenticated,
      );
    }
    const claims = await verifyToken(bearerToken(authorization), { secret: options.jwtSecret, now });
    return { kind: "user", userId: claims.userId, role: claims.role, accountId: claims.accountId };
  }

  async function authenticate(header: Headers): Promise<Principal> {
    const authorization = header.get("authorization");
    const accountKey = header.get(ACCOUNT_KEY_HEADER);
    if (authorization !== null && accountKey !== null) {
      throw new ConnectError(
        `send one credential: Authorization or ${ACCOUNT_KEY_HEADER}, not both`,
        Code.InvalidArgument,
      );
    }
    if (authorization !== null) return userPrincipal(authorization);
    if (accountKey !== null) return accountPrincipal(accountKey);
    return { kind: "anonymous" };
  }

  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const principal = await authenticate(req.header);
    const level = accessLevelFor(policy, method);
    if (level !== "anyone" && principal.kind !== "user") {
      const who = level === "admin" ? "an admin's" : "a user's";
      throw new ConnectError(`${method} needs ${who} token in Authorization: Bearer <token>`, Code.Unauthenticated);
    }
    if (level === "admin" && !(principal.kind === "user" && principal.role === "admin")) {
      throw new ConnectError(`${method} is for admins only`, Code.PermissionDenied);
    }
    req.contextValues.set(principalKey, principal);
    return await next(req);
  };
}
