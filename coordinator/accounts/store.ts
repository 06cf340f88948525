// The accounts table: create a key's account, find the account a key belongs to.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import { generateAccountKey, hashAccountKey, normalizeAccountKey, type RandomInt } from "./keys.ts";

/** Creates an account and returns its key (the only time the key exists outside the caller). */
export async function createAccount(db: Kysely<Database>, random?: RandomInt): Promise<{ id: string; key: string }> {
  // A collision among 10^16 keys is unlikely but not impossible: draw again rather than fail.
  for (let attempt = 0; attempt < 5; attempt++) {
    const key = generateAccountKey(random);
    const row = await db
      .insertInto("accounts")
      .values({ key_hash: hashAccountKey(key.replaceAll(" ", "")) })
      .onConflict((oc) => oc.column("key_hash").doNothing())
      .returning("id")
      .executeTakeFirst();
    if (row) return { id: row.id, key };
  }
  throw new Error("could not draw an unused account key in 5 attempts");
}

/** The id of the live (not revoked) account whose key has these 16 digits, or undefined. */
export async function findAccountId(db: Kysely<Database>, digits: string): Promise<string | undefined> {
  const row = await db
    .selectFrom("accounts")
    .select("id")
    .where("key_hash", "=", hashAccountKey(digits))
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return row?.id;
}

/**
 * Found keys only (an unknown key always asks the database, so a new key works at once), keyed by the
 * key's digest, never the key. A revoked key keeps working here for up to `ttlMs`: the price of keeping
 * the database off the hot path. Bounded, oldest entry out first.
 */
export class AccountKeyCache {
  private readonly entries = new Map<string, { accountId: string; until: number }>();
  private static readonly MAX_ENTRIES = 10_000;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  get(digest: string): string | undefined {
    const entry = this.entries.get(digest);
    if (entry === undefined) return undefined;
    if (entry.until <= this.now()) {
      this.entries.delete(digest);
      return undefined;
    }
    return entry.accountId;
  }

  set(digest: string, accountId: string): void {
    if (this.entries.size >= AccountKeyCache.MAX_ENTRIES) {
      this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(digest, { accountId, until: this.now() + this.ttlMs });
  }
}

const sharedCaches = new WeakMap<Kysely<Database>, AccountKeyCache>();

/**
 * findAccountId behind a 60 s cache of found keys, one per database handle: what a chat request's
 * `account_key` field costs after the first request with that key (see AccountKeyCache for the trade-off).
 */
export async function findAccountIdCached(db: Kysely<Database>, digits: string): Promise<string | undefined> {
  let cache = sharedCaches.get(db);
  if (!cache) sharedCaches.set(db, (cache = new AccountKeyCache(60_000, Date.now)));
  const digest = hashAccountKey(digits);
  const cached = cache.get(digest);
  if (cached !== undefined) return cached;
  const accountId = await findAccountId(db, digits);
  if (accountId !== undefined) cache.set(digest, accountId);
  return accountId;
}

/** Where a caller put its account key, for the refusal's words: a request field (`account_key`) or a header. */
export type AccountKeySource = { field: string } | { header: string };

/**
 * The live account of a key as a caller sends it (16 digits, spaces optional), through the cache above: the one
 * key lookup of every chat entry point and HTTP credential. An unknown or revoked key is Unauthenticated, naming
 * where it came from; a malformed one is a bad value in a field (InvalidArgument), a wrong credential in a header
 * (Unauthenticated).
 */
export async function accountIdForKey(db: Kysely<Database>, key: string, source: AccountKeySource): Promise<string> {
  const where = "field" in source ? source.field : source.header;
  let digits: string;
  try {
    digits = normalizeAccountKey(key, where);
  } catch (err) {
    if ("field" in source) throw err;
    throw new ConnectError(ConnectError.from(err).rawMessage, Code.Unauthenticated);
  }
  const accountId = await findAccountIdCached(db, digits);
  if (accountId !== undefined) return accountId;
  const message =
    "field" in source ? `${where}: unknown or revoked account key` : `unknown or revoked account key (${where})`;
  throw new ConnectError(message, Code.Unauthenticated);
}
