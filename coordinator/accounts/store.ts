// The accounts table: create a key's account, find the account a key belongs to.
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import { generateAccountKey, hashAccountKey, type RandomInt } from "./keys.ts";

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
