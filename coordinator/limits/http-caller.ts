// Who is calling a plain HTTP chat route (OpenAI-compatible API, SSE), where the Connect auth interceptor does not run.
import { Code, ConnectError } from "@connectrpc/connect";
import type { FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import { ACCOUNT_KEY_HEADER } from "../accounts/auth.ts";
import type { Principal } from "../accounts/principal.ts";
import { accountIdForKey } from "../accounts/store.ts";
import { verifyToken } from "../accounts/tokens.ts";
import type { Database } from "../db/schema.ts";

/*
 * The same credentials as the interceptor, plus one: OpenAI clients can only send `Authorization: Bearer
 * <apiKey>`, so a bearer of 16 digits (spaces allowed) is an account key. A bearer that looks like any JOSE
 * token is a user token, checked as one. Any other bearer is ignored: OpenAI SDKs refuse to start without an
 * API key, so callers put placeholders there ("unused", "sk-...") and must stay anonymous rather than be refused.
 * A credential that is present but wrong is Unauthenticated, never silently anonymous: "looks like a token"
 * is deliberately wide (an empty signature, as in `alg: none`, or a JWE's five parts), since a token that
 * slipped through as a placeholder would be served as anonymous.
 */

const accountKeyShape = /^\d{4} ?\d{4} ?\d{4} ?\d{4}$/;
/** Dot-separated parts (JWS: 3, JWE: 5; any may be empty), or a base64url JSON header (`eyJ` is `{"`). */
const tokenShape = /^[^.\s]*(\.[^.\s]*){2,4}$|^eyJ/;

export interface HttpCallerOptions {
  db: Kysely<Database>;
  /** JWT_SECRET; undefined means no bearer token can be valid here. */
  jwtSecret: string | undefined;
  now?: () => number;
}

export type ResolveHttpCaller = (req: FastifyRequest) => Promise<Principal>;

export function httpCallerResolver(options: HttpCallerOptions): ResolveHttpCaller {
  async function account(value: string, header: string): Promise<Principal> {
    return { kind: "account", accountId: await accountIdForKey(options.db, value, { header }) };
  }

  async function user(token: string): Promise<Principal> {
    if (options.jwtSecret === undefined) {
      throw new ConnectError(
        "this coordinator accepts no bearer tokens: JWT_SECRET is not configured",
        Code.Unauthenticated,
      );
    }
    let claims;
    try {
      claims = await verifyToken(token, { secret: options.jwtSecret, now: options.now });
    } catch (err) {
      // "invalid token" says what, not where: name the header, as the account-key refusals do
      throw new ConnectError(`${ConnectError.from(err).rawMessage} (Authorization: Bearer)`, Code.Unauthenticated);
    }
    return { kind: "user", userId: claims.userId, role: claims.role, accountId: claims.accountId };
  }

  return async (req) => {
    const bearer = /^Bearer +(\S.*)$/i.exec(req.headers.authorization ?? "")?.[1]?.trim();
    const credential =
      bearer !== undefined && (accountKeyShape.test(bearer) || tokenShape.test(bearer)) ? bearer : undefined;
    const header = req.headers[ACCOUNT_KEY_HEADER];
    const keyHeader = Array.isArray(header) ? header[0] : header;
    if (credential !== undefined && keyHeader !== undefined) {
      throw new ConnectError(
        `send one credential: Authorization or ${ACCOUNT_KEY_HEADER}, not both`,
        Code.InvalidArgument,
      );
    }
    if (credential !== undefined)
      return accountKeyShape.test(credential) ? account(credential, "Authorization: Bearer") : user(credential);
    if (keyHeader !== undefined) return account(keyHeader, ACCOUNT_KEY_HEADER);
    return { kind: "anonymous" };
  };
}
