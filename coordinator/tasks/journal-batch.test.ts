// What `committed` makes of PostgreSQL's word on a transaction whose COMMIT reply was lost: committed or not, ask
// again later (still in progress, or the question itself failed), and an id "from the future" (a failover to a
// replica that never saw it) as not committed. The journal's connection asks a pg_xact_status of the test's that
// answers as PostgreSQL does, or fails with the SQLSTATE the test puts in `refusal`.
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, databaseSource, type TestDatabase } from "../../test/support/database.ts";
import { openDatabase, type OpenDatabase } from "../db/connect.ts";
import { CommitUnknownError, isDatabaseUnavailable } from "../db/faults.ts";
import { committed } from "./journal-batch.ts";

describe.skipIf(databaseSource().kind !== "postgres")("committed: a transaction's fate by its id", () => {
  let test: TestDatabase;
  let asking: OpenDatabase;

  beforeAll(async () => {
    test = await createTestDatabase({ migrate: false });
    const { name } = (await sql<{ name: string }>`SELECT current_database() AS name`.execute(test.db)).rows[0]!;
    // connections opened from now on find public's pg_xact_status first
    await sql.raw(`ALTER DATABASE "${name}" SET search_path = public, pg_catalog`).execute(test.db);
    await sql`CREATE TABLE refusal (sqlstate text)`.execute(test.db);
    await sql`CREATE FUNCTION public.pg_xact_status(x xid8) RETURNS text LANGUAGE plpgsql AS $$
      DECLARE code text := (SELECT sqlstate FROM refusal LIMIT 1);
      BEGIN
        IF code IS NOT NULL THEN RAISE EXCEPTION 'refused with %', code USING ERRCODE = code; END IF;
        RETURN pg_catalog.pg_xact_status(x);
      END $$`.execute(test.db);
    asking = await openDatabase({ url: test.url, poolSize: 1, dataDir: "" });
  });
  afterAll(async () => {
    await asking?.close();
    await test?.close();
  });

  const refuseWith = async (sqlstate: string | null) => {
    await sql`DELETE FROM refusal`.execute(test.db);
    if (sqlstate) await sql`INSERT INTO refusal VALUES (${sqlstate})`.execute(test.db);
  };
  const xidOf = (ending: "commit" | "rollback") =>
    test.db
      .transaction()
      .execute(async (tx) => {
        const { xid } = (await sql<{ xid: string }>`SELECT pg_current_xact_id()::text AS xid`.execute(tx)).rows[0]!;
        if (ending === "rollback") throw Object.assign(new Error("rolled back"), { xid });
        return xid;
      })
      .catch((err: { xid?: string }) => err.xid!);

  it("says committed for a transaction that committed, and not for one rolled back", async () => {
    await refuseWith(null);
    expect(await committed(asking.db, await xidOf("commit"))).toBe(true);
    expect(await committed(asking.db, await xidOf("rollback"))).toBe(false);
  });

  it("asks again later about a transaction still in progress", async () => {
    await refuseWith(null);
    const held = await test.db.connection().execute(async (conn) => {
      await sql`BEGIN`.execute(conn);
      const { xid } = (await sql<{ xid: string }>`SELECT pg_current_xact_id()::text AS xid`.execute(conn)).rows[0]!;
      const error = await committed(asking.db, xid).catch((err: unknown) => err);
      await sql`ROLLBACK`.execute(conn);
      return error;
    });
    expect(held).toBeInstanceOf(CommitUnknownError);
    expect(isDatabaseUnavailable(held)).toBe(true);
  });

  it("takes an id from the future (a failover to a replica that never saw it) for not committed", async () => {
    await refuseWith("22023");
    expect(await committed(asking.db, await xidOf("commit"))).toBe(false);
  });

  it("asks again when the question itself fails otherwise, though the transaction committed", async () => {
    await refuseWith("57014"); // query_canceled: a statement timeout
    const error = await committed(asking.db, await xidOf("commit")).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(CommitUnknownError);
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect((error as Error).message).toContain("refused with 57014");
    await refuseWith(null);
  });
});
