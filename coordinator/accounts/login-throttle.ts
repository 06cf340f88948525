// Login throttling shared by every coordinator on one database: failed attempts per email and per client address.
import { createHash } from "node:crypto";
import { isIPv6 } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";

/*
 * Design: one row per failed attempt per subject in login_failures (a sliding window, not a fixed one, so
 * there is no burst at a window edge). Subjects are the email and the client address (IPv6 grouped by /64,
 * since one host usually owns a whole /64). They are stored as SHA-256 digests: people type passwords into
 * the email field, and the table should not collect those, nor a list of addresses.
 *
 * An attempt first records itself as a failure, then counts the others in the window. Recording before
 * checking means parallel attempts (also on other coordinators) see each other without a lock; a success
 * deletes its rows again. A refused attempt deletes its rows as well, so hammering a blocked email does not
 * push the window further: it opens `windowMs` after the failure that filled it.
 */

export interface ThrottlePolicy {
  maxFailures: number;
  windowMs: number;
}

export const LOGIN_THROTTLE: ThrottlePolicy = { maxFailures: 5, windowMs: 15 * 60_000 };

/** An attempt in progress: its rows count as failures until loginSucceeded removes them. */
export interface LoginAttempt {
  ids: number[];
  emailSubject: string;
}

/** The subjects an attempt counts against: the email always, the client address when it is known. */
export function loginSubjects(email: string, clientAddress: string): { email: string; address?: string } {
  const subjects: { email: string; address?: string } = { email: digest("email", email) };
  if (clientAddress !== "") subjects.address = digest("address", addressGroup(clientAddress));
  return subjects;
}

/**
 * Records the attempt and refuses it with ResourceExhausted (retry-after in the message and in a
 * `retry-after` header, in seconds) when its email or address already has `maxFailures` failures in the window.
 */
export async function beginLoginAttempt(
  db: Kysely<Database>,
  subjects: { email: string; address?: string },
  now: number,
  policy: ThrottlePolicy = LOGIN_THROTTLE,
): Promise<LoginAttempt> {
  const list = subjects.address === undefined ? [subjects.email] : [subjects.email, subjects.address];
  const at = new Date(now);
  const cutoff = new Date(now - policy.windowMs);
  const inserted = await db
    .insertInto("login_failures")
    .values(list.map((subject) => ({ subject, failed_at: at })))
    .returning("id")
    .execute();
  const ids = inserted.map((row) => row.id);
  const earlier = await db
    .selectFrom("login_failures")
    .select(["subject", "failed_at"])
    .where("subject", "in", list)
    .where("failed_at", ">", cutoff)
    .where("id", "not in", ids)
    .orderBy("failed_at")
    .execute();
  let retryAtMs = 0;
  for (const subject of list) {
    const times = earlier.filter((row) => row.subject === subject).map((row) => row.failed_at.getTime());
    if (times.length < policy.maxFailures) continue;
    // Dropping below the limit needs the oldest (count - max + 1) failures to leave the window.
    retryAtMs = Math.max(retryAtMs, times[times.length - policy.maxFailures]! + policy.windowMs);
  }
  // Expired rows of these subjects go now; pruneLoginFailures sweeps subjects that never come back.
  await db.deleteFrom("login_failures").where("subject", "in", list).where("failed_at", "<=", cutoff).execute();
  if (retryAtMs > 0) {
    await db.deleteFrom("login_failures").where("id", "in", ids).execute();
    const seconds = Math.max(1, Math.ceil((retryAtMs - now) / 1000));
    throw new ConnectError(
      `too many failed logins for this email or from this address; try again in ${seconds} s`,
      Code.ResourceExhausted,
      { "retry-after": String(seconds) },
    );
  }
  return { ids, emailSubject: subjects.email };
}

/** A correct password: this attempt was no failure, and the email's earlier failures are forgiven. */
export async function loginSucceeded(db: Kysely<Database>, attempt: LoginAttempt): Promise<void> {
  // The address keeps its failures: one success must not unlock guessing other people's passwords.
  await db
    .deleteFrom("login_failures")
    .where((eb) => eb.or([eb("id", "in", attempt.ids), eb("subject", "=", attempt.emailSubject)]))
    .execute();
}

/** Deletes failures older than the window; run it now and then (e.g. every 15 minutes). Returns rows deleted. */
export async function pruneLoginFailures(
  db: Kysely<Database>,
  now: number = Date.now(),
  policy: ThrottlePolicy = LOGIN_THROTTLE,
): Promise<number> {
  const result = await db
    .deleteFrom("login_failures")
    .where("failed_at", "<=", new Date(now - policy.windowMs))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The address an attempt is counted against: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 as its /64. */
export function addressGroup(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!isIPv6(address)) return address;
  const [head = "", tail] = address.toLowerCase().split("%")[0]!.split("::");
  const groups = (part: string | undefined) =>
    part ? part.split(":").flatMap((group) => (group.includes(".") ? ["0", "0"] : [group])) : [];
  const left = groups(head);
  const right = groups(tail);
  const full =
    tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return `${full
    .slice(0, 4)
    .map((group) => group.padStart(4, "0"))
    .join(":")}::/64`;
}

function digest(kind: string, value: string): string {
  return `${kind}:${createHash("sha256").update(`${kind}\0${value}`, "utf8").digest("hex")}`;
}
