// Chat rate limits: messages per rolling 24 h per client address, account or user, kept in PostgreSQL.
import { Code, ConnectError } from "@connectrpc/connect";
import { sql, type Kysely } from "kysely";
import type { Logger } from "pino";
import { hashAccountKey } from "../accounts/keys.ts";
import { addressGroup } from "../accounts/login-throttle.ts";
import { isAdmin, type Principal } from "../accounts/principal.ts";
import type { Config } from "../config.ts";
import type { Database } from "../db/schema.ts";

/*
 * Design (see migrations/0004_rate_limits.sql): one chat_admissions row per subject holds the times of its
 * admitted messages. Admitting is ONE statement, INSERT ... ON CONFLICT DO UPDATE ... WHERE (count in the
 * window) < limit: PostgreSQL locks the subject's row and judges the newest version of it, so two coordinators
 * admitting the same subject at once cannot both take the last message. The window rolls: a message counts
 * for exactly 24 h after it was admitted (no burst at midnight). A refused message writes nothing, so hammering
 * does not push the wait further out; it ends when the oldest counted message leaves the window.
 *
 * A message is charged at admission and given back (its time removed) when the request ends before any token
 * with Unavailable, ResourceExhausted or NotFound: the network could not serve it (no node, all busy, a model
 * nobody serves), so the caller got nothing; or with InvalidArgument: a bad value found only after admission
 * (a document over CONTEXT_MAX_CHUNKS) is a bad value like any other, and those are never charged. Cancelled,
 * failed mid-answer or timed-out requests stay charged: a node did work for them.
 */

const CHAT_WINDOW_MS = 24 * 3_600_000;

/** Who a message counts against; `scope` completes "1 message per 24 h ..." in the refusal. */
export type ChatSubject =
  | { kind: "exempt"; reason: "admin" | "unlimited account key" }
  | { kind: "limited"; subject: string; limit: number; scope: string };

/** An admitted message, for giving it back. */
export interface ChatTicket {
  subject: string;
  at: Date;
}

export type Admission =
  | { ok: true; ticket?: ChatTicket }
  /** retryAfterSeconds is absent when the limit is 0 (no wait helps). */
  | { ok: false; error: ConnectError; retryAfterSeconds?: number; retryAt?: Date };

/**
 * What meter() needs of an answer's events: a `token` event means the caller got part of an answer. The limiter's
 * own shape, so that limits/ never imports the orchestrator's types (tasks/ calls the limiter, not the reverse).
 */
export interface MeteredEvent {
  type: string;
}

/** The caller of a chat request as an entry point knows it. */
export interface ChatCaller {
  principal: Principal;
  /** The account of a key sent in the request itself (ChatParams.account_key, the SSE body's account_key). */
  requestAccountId?: string;
  /** The socket's peer, or the first X-Forwarded-For hop with TRUST_PROXY. */
  clientAddress: string;
}

export interface ChatLimiterOptions {
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number;
  windowMs?: number;
  /** How long the accounts of UNLIMITED_ACCOUNT_KEYS are trusted without asking the database. */
  unlimitedCacheMs?: number;
  logger?: Logger;
}

// The network could not serve the message at all (charging would punish the caller for our state: no node, all
// busy, a conversation longer than any online node's context), or the request was refused as invalid after
// admission (a bad value is refused uncharged wherever it is found), or the coordinator failed it (Internal: a
// divided request's part refused what the coordinator wrote).
const GIVEN_BACK = new Set([
  Code.Unavailable,
  Code.ResourceExhausted,
  Code.NotFound,
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.Internal,
]);

export class ChatLimiter {
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #unlimitedHashes: string[];
  readonly #unlimitedCacheMs: number;
  #unlimited: { ids: Set<string>; until: number } | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly limits: Config["rateLimits"],
    private readonly options: ChatLimiterOptions = {},
  ) {
    this.#now = options.now ?? Date.now;
    this.#windowMs = options.windowMs ?? CHAT_WINDOW_MS;
    this.#unlimitedHashes = limits.unlimitedAccountKeys.map(hashAccountKey);
    this.#unlimitedCacheMs = options.unlimitedCacheMs ?? 60_000;
  }

  /** Admins and unlimited keys first, then a user's own limit, then the account's, else the client address's. */
  async subjectFor(caller: ChatCaller): Promise<ChatSubject> {
    const { principal } = caller;
    if (isAdmin(principal)) return { kind: "exempt", reason: "admin" };
    const principalAccount = principal.kind === "anonymous" ? undefined : (principal.accountId ?? undefined);
    const accounts = [caller.requestAccountId, principalAccount].filter((id): id is string => id !== undefined);
    if (accounts.length > 0 && this.#unlimitedHashes.length > 0) {
      const unlimited = await this.#unlimitedAccountIds();
      if (accounts.some((id) => unlimited.has(id))) return { kind: "exempt", reason: "unlimited account key" };
    }
    if (principal.kind === "user") {
      return {
        kind: "limited",
        subject: `user:${principal.userId}`,
        limit: this.limits.userPerDay,
        scope: "for a signed-in user",
      };
    }
    const accountId = caller.requestAccountId ?? principalAccount;
    if (accountId !== undefined) {
      return {
        kind: "limited",
        subject: `account:${accountId}`,
        limit: this.limits.accountKeyPerDay,
        scope: "with an account key",
      };
    }
    // IPv6 by /64: one host usually owns a whole /64, so per-address counting would be no limit at all
    const address = caller.clientAddress === "" ? "unknown" : addressGroup(caller.clientAddress);
    return {
      kind: "limited",
      subject: `ip:${address}`,
      limit: this.limits.anonymousPerDay,
      scope: "for anonymous use",
    };
  }

  /** Charges one message to the subject, or says why not and for how long. */
  async admitChat(subject: ChatSubject): Promise<Admission> {
    if (subject.kind === "exempt") return { ok: true };
    if (subject.limit === 0) {
      const error = new ConnectError(
        `rate limit: chat ${subject.scope} is switched off on this coordinator`,
        Code.PermissionDenied,
      );
      return { ok: false, error };
    }
    // a give-back racing the refusal can leave room: one more try settles it
    for (let attempt = 0; ; attempt++) {
      const now = this.#now();
      const at = new Date(now);
      if (await this.#charge(subject.subject, subject.limit, at))
        return { ok: true, ticket: { subject: subject.subject, at } };
      const counted = await this.#admittedSince(subject.subject, new Date(now - this.#windowMs));
      if (counted.length < subject.limit && attempt === 0) continue;
      // below the limit again once the oldest (count - limit + 1) messages have left the window
      const oldest = counted[Math.max(0, counted.length - subject.limit)]?.getTime() ?? now;
      const retryAtMs = Math.max(oldest + this.#windowMs, now + 1_000);
      // the header rounds up (never too early), the message down ("23 h 59 min", not "24 h 0 min" a moment after)
      const retryAfterSeconds = Math.ceil((retryAtMs - now) / 1000);
      const retryAt = new Date(Math.ceil(retryAtMs / 1000) * 1000);
      const message =
        `rate limit: ${subject.limit} message${subject.limit === 1 ? "" : "s"} per ${this.#windowMs / 3_600_000} ` +
        `h ${subject.scope}; ` +
        `next message allowed in ${humanDuration(Math.max(1, Math.floor((retryAtMs - now) / 1000)))} ` +
        `(at ${retryAt.toISOString().replace(".000Z", "Z")})`;
      const error = new ConnectError(message, Code.ResourceExhausted, { "retry-after": String(retryAfterSeconds) });
      return { ok: false, error, retryAfterSeconds, retryAt };
    }
  }

  /** subjectFor + admitChat, throwing the refusal; undefined for exempt callers (nothing to give back). */
  async admit(caller: ChatCaller): Promise<ChatTicket | undefined> {
    const admission = await this.admitChat(await this.subjectFor(caller));
    if (!admission.ok) throw admission.error;
    return admission.ticket;
  }

  /** Removes one admitted message from its subject's window. */
  async giveBack(ticket: ChatTicket): Promise<void> {
    // array_position finds one occurrence, so two messages admitted in the same millisecond are given back one by one
    await sql`
      UPDATE chat_admissions
      SET admitted_at = admitted_at[:array_position(admitted_at, ${ticket.at}::timestamptz) - 1]
                     || admitted_at[array_position(admitted_at, ${ticket.at}::timestamptz) + 1:]
      WHERE subject = ${ticket.subject} AND ${ticket.at}::timestamptz = ANY (admitted_at)`.execute(this.db);
  }

  /**
   * The orchestrator's events, passed through; gives the message back when the request ends before any
   * token with a code in GIVEN_BACK (see the design note above).
   */
  async *meter<E extends MeteredEvent>(
    events: AsyncGenerator<E>,
    ticket: ChatTicket | undefined,
  ): AsyncGenerator<E, void, undefined> {
    if (ticket === undefined) return yield* events;
    let answered = false;
    try {
      for await (const event of events) {
        if (event.type === "token") answered = true;
        yield event;
      }
    } catch (err) {
      if (!answered && GIVEN_BACK.has(ConnectError.from(err).code)) {
        // the caller must hear the request's own failure, not a bookkeeping one
        await this.giveBack(ticket).catch((giveBackError: unknown) =>
          this.options.logger?.error({ err: giveBackError }, "could not give a chat message back"),
        );
      }
      throw err;
    }
  }

  /** Deletes subjects with nothing left in the window; run it now and then. Returns rows deleted. */
  async prune(): Promise<number> {
    const result = await this.db
      .deleteFrom("chat_admissions")
      .where("expires_at", "<=", new Date(this.#now()))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** True when the message was charged (the subject had room), false when it was refused. */
  async #charge(subject: string, limit: number, at: Date): Promise<boolean> {
    const cutoff = new Date(at.getTime() - this.#windowMs);
    const expires = new Date(at.getTime() + this.#windowMs);
    // The WHERE of DO UPDATE runs on the locked, newest row: the check and the charge are one atomic step.
    const result = await sql<{ admitted: number }>`
      INSERT INTO chat_admissions AS c (subject, admitted_at, expires_at)
      VALUES (${subject}, ARRAY[${at}::timestamptz], ${expires})
      ON CONFLICT (subject) DO UPDATE
        SET admitted_at = ARRAY(
              SELECT t FROM unnest(c.admitted_at) AS t WHERE t > ${cutoff}::timestamptz ORDER BY t
            ) || ${at}::timestamptz,
            expires_at = greatest(c.expires_at, excluded.expires_at)
        WHERE (SELECT count(*) FROM unnest(c.admitted_at) AS t WHERE t > ${cutoff}::timestamptz) < ${limit}
      RETURNING 1 AS admitted`.execute(this.db);
    return result.rows.length === 1;
  }

  async #admittedSince(subject: string, cutoff: Date): Promise<Date[]> {
    const result = await sql<{ at: Date }>`
      SELECT t AS at FROM chat_admissions, unnest(admitted_at) AS t
      WHERE subject = ${subject} AND t > ${cutoff}::timestamptz ORDER BY t`.execute(this.db);
    return result.rows.map((row) => row.at);
  }

  /** The live accounts of UNLIMITED_ACCOUNT_KEYS (the config has keys, callers bring account ids). */
  async #unlimitedAccountIds(): Promise<Set<string>> {
    const now = this.#now();
    if (this.#unlimited && this.#unlimited.until > now) return this.#unlimited.ids;
    const rows = await this.db
      .selectFrom("accounts")
      .select("id")
      .where("key_hash", "in", this.#unlimitedHashes)
      .where("revoked_at", "is", null)
      .execute();
    this.#unlimited = { ids: new Set(rows.map((row) => row.id)), until: now + this.#unlimitedCacheMs };
    return this.#unlimited.ids;
  }
}

/** "23 h 59 min", "4 min 5 s", "12 s": the refusal's wait for people (the header has the exact seconds). */
export function humanDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const min = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h} h ${min} min`;
  if (min > 0) return s > 0 ? `${min} min ${s} s` : `${min} min`;
  return `${s} s`;
}
