// AccountService: anonymous account keys, and email/password users signed in with JWTs.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { AuthTokenSchema, type AccountService, type AuthToken } from "../../gen/iris/v1/account_pb.ts";
import type { Database } from "../db/schema.ts";
import type { KeyRequestLimiter } from "../limits/key-requests.ts";
import { clientAddressKey } from "../request-context.ts";
import { normalizeAccountKey } from "./keys.ts";
import type { ThrottlePolicy } from "./login-throttle.ts";
import type { ScryptParams } from "./passwords.ts";
import { createAccount, findAccountId } from "./store.ts";
import { bearerToken, issueToken, verifyToken, type IssueTokenOptions } from "./tokens.ts";
import { currentUser, loginUser, registerUser, type SignedInUser, type UserDeps } from "./users.ts";

export interface AccountServiceDeps {
  db: Kysely<Database>;
  jwt: {
    /** JWT_SECRET; undefined leaves Register/Login/RefreshToken answering FailedPrecondition. */
    secret: string | undefined;
    /** Default 3600. */
    lifetimeSeconds?: number;
    /** How long refreshing can extend one login; default 7 days (see tokens.ts). */
    maxSessionSeconds?: number;
  };
  /** config.adminEmails (lowercased). */
  adminEmails: readonly string[];
  logger: Logger;
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number;
  /** Tests pass cheap scrypt parameters and short throttle windows. */
  passwordParams?: ScryptParams;
  throttle?: ThrottlePolicy;
  /** GenerateKey / VerifyKey per client address; absent in unit tests of other methods (then unlimited). */
  keyLimits?: KeyRequestLimiter;
}

/*
 * Without JWT_SECRET the coordinator still serves everything anonymous and key-based (chat, account keys,
 * nodes); only the user methods refuse, with FailedPrecondition, before touching the database.
 */
export function accountService(deps: AccountServiceDeps): Partial<ServiceImpl<typeof AccountService>> {
  const { db, logger } = deps;
  const users: UserDeps = {
    db,
    adminEmails: deps.adminEmails,
    passwordParams: deps.passwordParams,
    throttle: deps.throttle,
    now: deps.now,
  };

  function tokenOptions(): IssueTokenOptions {
    if (deps.jwt.secret === undefined) {
      throw new ConnectError("JWT_SECRET is not configured on this coordinator", Code.FailedPrecondition);
    }
    return {
      secret: deps.jwt.secret,
      lifetimeSeconds: deps.jwt.lifetimeSeconds,
      maxSessionSeconds: deps.jwt.maxSessionSeconds,
      now: deps.now,
    };
  }

  async function signIn(user: SignedInUser, options: IssueTokenOptions): Promise<AuthToken> {
    const { token, expiresAt } = await issueToken(user, options);
    return create(AuthTokenSchema, {
      accessToken: token,
      expiresAtUnixMs: BigInt(expiresAt.getTime()),
      userId: user.userId,
      role: user.role,
    });
  }

  return {
    async generateKey(_request, ctx) {
      deps.keyLimits?.admit("GenerateKey", ctx.values.get(clientAddressKey));
      const { key } = await createAccount(db);
      return { accountKey: key };
    },
    async verifyKey(request, ctx) {
      const digits = normalizeAccountKey(request.accountKey);
      // counted once the request is known good (protovalidate, then the format): a malformed key costs nothing
      deps.keyLimits?.admit("VerifyKey", ctx.values.get(clientAddressKey));
      return { valid: (await findAccountId(db, digits)) !== undefined };
    },
    async register(request) {
      const options = tokenOptions();
      const user = await registerUser(users, request);
      logger.info({ userId: user.userId, role: user.role }, "user registered");
      return { token: await signIn(user, options) };
    },
    async login(request, ctx) {
      const options = tokenOptions();
      const clientAddress = ctx.values.get(clientAddressKey);
      try {
        const user = await loginUser(users, { email: request.email, password: request.password, clientAddress });
        logger.info({ userId: user.userId, role: user.role }, "user logged in");
        return { token: await signIn(user, options) };
      } catch (err) {
        // Neither the email nor the password goes to the log; the address shows who is guessing.
        const code = err instanceof ConnectError ? err.code : undefined;
        if (code === Code.Unauthenticated) logger.info({ clientAddress }, "login failed");
        if (code === Code.ResourceExhausted) logger.warn({ clientAddress }, "login refused: too many failures");
        throw err;
      }
    },
    async refreshToken(_request, ctx) {
      const options = tokenOptions();
      const current = await verifyToken(presentedToken(ctx), options);
      const user = await currentUser(users, current.userId);
      return { token: await signIn(user, { ...options, sessionStartedAt: current.sessionStartedAt }) };
    },
  };
}

// Read here as well as in the auth interceptor: the refresh needs the session start, which the principal lacks.
function presentedToken(ctx: HandlerContext): string {
  const authorization = ctx.requestHeader.get("authorization");
  if (authorization === null) {
    throw new ConnectError(
      "RefreshToken needs the current token in Authorization: Bearer <token>",
      Code.Unauthenticated,
    );
  }
  return bearerToken(authorization);
}
