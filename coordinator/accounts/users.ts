// Email/password users: register, login (constant work, throttled) and the admin rule from ADMIN_EMAILS.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import type { UserRole } from "../../common/vocabulary.ts";
import {
  beginLoginAttempt,
  loginSubjects,
  loginSucceeded,
  LOGIN_THROTTLE,
  type ThrottlePolicy,
} from "./login-throttle.ts";
import {
  DEFAULT_SCRYPT_PARAMS,
  dummyHash,
  hashPassword,
  needsRehash,
  verifyPassword,
  type ScryptParams,
} from "./passwords.ts";

/*
 * Enumeration: Login answers "email or password is wrong" (Unauthenticated) for an unknown email and for a
 * wrong password alike, after the same work (an unknown email is verified against a dummy hash with the
 * current parameters), and throttles unknown emails exactly like known ones. Register does say
 * AlreadyExists for a taken email: a sign-up form has to tell the person, as every service does; the
 * message never says more than that.
 *
 * Admins: the role follows ADMIN_EMAILS and nothing else (no "first user is admin"). It is applied at
 * register, at every login and at every token refresh, in both directions, so adding an email promotes its
 * user at their next login/refresh and removing it demotes them; a token already issued keeps its role
 * until it expires (at most one token lifetime).
 */

export interface UserDeps {
  db: Kysely<Database>;
  /** Lowercased (config.ts does it). */
  adminEmails: readonly string[];
  /** Cost of new hashes; tests pass cheap ones. */
  passwordParams?: ScryptParams;
  throttle?: ThrottlePolicy;
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number;
}

/** A signed-in user: what a token is issued for. */
export interface SignedInUser {
  userId: string;
  role: UserRole;
  accountId: string | null;
}

const WRONG_CREDENTIALS = "email or password is wrong";
// protovalidate checks these first (proto rules); repeated here so the functions are safe on their own.
const MIN_PASSWORD = 10;
const MAX_PASSWORD = 1024;
const MAX_EMAIL = 254;

/** Emails compare case-insensitively: stored and looked up trimmed and lowercased. */
function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Creates a user; AlreadyExists when the email is taken. */
export async function registerUser(deps: UserDeps, input: { email: string; password: string }): Promise<SignedInUser> {
  const email = normalizeEmail(input.email);
  if (email.length > MAX_EMAIL || !/^[^\s@]+@[^\s@]+$/.test(email)) {
    throw new ConnectError("email must be an email address of at most 254 characters", Code.InvalidArgument);
  }
  checkPasswordLength(input.password, MIN_PASSWORD);
  const role = roleFor(deps, email);
  const passwordHash = await hashPassword(input.password, deps.passwordParams ?? DEFAULT_SCRYPT_PARAMS);
  const row = await deps.db
    .insertInto("users")
    .values({ email, password_hash: passwordHash, role })
    .onConflict((oc) => oc.column("email").doNothing())
    .returning(["id", "role", "account_id"])
    .executeTakeFirst();
  if (!row) throw new ConnectError("a user with this email already exists", Code.AlreadyExists);
  return { userId: row.id, role: row.role, accountId: row.account_id };
}

/**
 * Checks email and password. Unauthenticated "email or password is wrong" either way; ResourceExhausted
 * after too many failures for the email or the client address (see login-throttle.ts).
 */
export async function loginUser(
  deps: UserDeps,
  input: { email: string; password: string; clientAddress: string },
): Promise<SignedInUser> {
  const email = normalizeEmail(input.email);
  checkPasswordLength(input.password, 1);
  const params = deps.passwordParams ?? DEFAULT_SCRYPT_PARAMS;
  const now = deps.now?.() ?? Date.now();
  const attempt = await beginLoginAttempt(
    deps.db,
    loginSubjects(email, input.clientAddress),
    now,
    deps.throttle ?? LOGIN_THROTTLE,
  );
  const user = await deps.db
    .selectFrom("users")
    .select(["id", "email", "password_hash", "role", "account_id"])
    .where("email", "=", email)
    .executeTakeFirst();
  const matches = await verifyPassword(input.password, user?.password_hash ?? dummyHash(params));
  if (!user || !matches) throw new ConnectError(WRONG_CREDENTIALS, Code.Unauthenticated);
  await loginSucceeded(deps.db, attempt);
  if (needsRehash(user.password_hash, params)) {
    // The cost was raised since this hash was made; the password is at hand only now.
    const passwordHash = await hashPassword(input.password, params);
    await deps.db.updateTable("users").set({ password_hash: passwordHash }).where("id", "=", user.id).execute();
  }
  return { userId: user.id, role: await syncRole(deps, user), accountId: user.account_id };
}

/**
 * The user a refreshed token is for, re-read from the database: Unauthenticated when the user is gone,
 * role re-derived from ADMIN_EMAILS.
 */
export async function currentUser(deps: UserDeps, userId: string): Promise<SignedInUser> {
  const user = await deps.db
    .selectFrom("users")
    .select(["id", "email", "role", "account_id"])
    .where("id", "=", userId)
    .executeTakeFirst();
  if (!user) throw new ConnectError("the user of this token no longer exists", Code.Unauthenticated);
  return { userId: user.id, role: await syncRole(deps, user), accountId: user.account_id };
}

function roleFor(deps: UserDeps, email: string): UserRole {
  return deps.adminEmails.includes(email) ? "admin" : "user";
}

/** Stores the role ADMIN_EMAILS gives this email when it differs from the stored one; returns it. */
async function syncRole(deps: UserDeps, user: { id: string; email: string; role: UserRole }): Promise<UserRole> {
  const role = roleFor(deps, user.email);
  if (role !== user.role) await deps.db.updateTable("users").set({ role }).where("id", "=", user.id).execute();
  return role;
}

// Lengths in code points, as protovalidate counts them (an emoji is one character, not two).
function checkPasswordLength(password: string, min: number): void {
  const length = [...password].length;
  if (length < min || length > MAX_PASSWORD) {
    throw new ConnectError(`password must be from ${min} to ${MAX_PASSWORD} characters long`, Code.InvalidArgument);
  }
}
