// Proves the typed schema against the real tables on every engine: round trips, JS types, verbatim text, constraints.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { DIFFICULTIES, DIVISION_MODES, NODE_TIERS, USER_ROLES } from "../../common/vocabulary.ts";
import { type Database, json, NODE_STATUSES, REPUTATION_RULES, TASK_STATUSES, type TaskStatus } from "./schema.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const EVIL = "Robert'); DROP TABLE nodes;--";

const unique = () => randomBytes(4).toString("hex");
const keyHash = () => createHash("sha256").update(randomBytes(16)).digest("hex");

async function newAccount(db: Kysely<Database>, label: string | null = null) {
  return db.insertInto("accounts").values({ key_hash: keyHash(), label }).returningAll().executeTakeFirstOrThrow();
}

async function newNode(db: Kysely<Database>, accountId: string, overrides: { id?: string; model_name?: string } = {}) {
  return db
    .insertInto("nodes")
    .values({
      id: overrides.id ?? `node-${unique()}`,
      account_id: accountId,
      tier: "PRO",
      model_name: overrides.model_name ?? "llama-3.1-70b-instruct.Q4_K_M.gguf",
      parameter_count: 70_000_000_000,
      quantization: "Q4_K_M",
      context_length: 8192,
      tokens_per_second: 42.5,
      max_concurrent_tasks: 2,
      gpus: json([{ name: "NVIDIA GeForce RTX 4090", vram_mb: 24_564 }]),
      public_key: randomBytes(32),
      agent_version: "0.1.0",
      promised_hours: json({ mon: [9, 17], tue: [9, 17] }),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Resolves to the database error a query was rejected with (fails the test if it was not). */
async function rejection(query: Promise<unknown>): Promise<{ code?: string; message?: string }> {
  const outcome = await query.then(
    () => ({ rejected: false as const }),
    (error: unknown) => ({ rejected: true as const, error }),
  );
  expect(outcome.rejected, "the database should have rejected this query").toBe(true);
  return outcome.rejected ? (outcome.error as { code?: string }) : {};
}

const CHECK_VIOLATION = "23514";
const UNIQUE_VIOLATION = "23505";
const FOREIGN_KEY_VIOLATION = "23503";

describe.each(testEngines())("schema on $name", ({ engine }) => {
  let t: TestDatabase;
  let db: Kysely<Database>;
  beforeAll(async () => {
    t = await createTestDatabase({ engine });
    db = t.db;
  });
  afterAll(async () => {
    await t?.close();
  });

  it("round-trips accounts, users, nodes and sessions with the documented JS types", async () => {
    const account = await newAccount(db, "my laptop");
    expect(account.id).toMatch(UUID);
    expect(account.created_at).toBeInstanceOf(Date);
    expect(account.revoked_at).toBeNull();

    const email = `ada-${unique()}@example.com`;
    const user = await db
      .insertInto("users")
      .values({ email, password_hash: "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA", account_id: account.id })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(user).toMatchObject({ email, role: "user", account_id: account.id });

    const inserted = await newNode(db, account.id);
    const node = await db.selectFrom("nodes").selectAll().where("id", "=", inserted.id).executeTakeFirstOrThrow();
    expectTypeOf(node.parameter_count).toEqualTypeOf<number>();
    expect(node.parameter_count).toBe(70_000_000_000);
    expect(node.tokens_per_second).toBe(42.5);
    expect(node.gpus).toEqual([{ name: "NVIDIA GeForce RTX 4090", vram_mb: 24_564 }]);
    expect(node.promised_hours).toEqual({ mon: [9, 17], tue: [9, 17] });
    expect(Buffer.isBuffer(node.public_key)).toBe(true);
    expect(node.public_key).toEqual(inserted.public_key);
    expect(node).toMatchObject({ reputation: 100, status: "offline", context_length: 8192 });
    expect(node.first_seen_at).toBeInstanceOf(Date);

    const connectedAt = new Date("2025-03-01T12:34:56.789Z");
    const session = await db
      .insertInto("node_sessions")
      .values({
        node_id: node.id,
        coordinator_instance: "coord-a",
        remote_address: "203.0.113.7:51234",
        connected_at: connectedAt,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(session.id).toMatch(UUID);
    expect(session.connected_at).toEqual(connectedAt);
    const closed = await db
      .updateTable("node_sessions")
      .set({ disconnected_at: new Date(connectedAt.getTime() + 3_600_000), disconnect_reason: "agent quit" })
      .where("id", "=", session.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(closed.disconnected_at?.toISOString()).toBe("2025-03-01T13:34:56.789Z");
  });

  it("round-trips tasks, task events and reputation events", async () => {
    const account = await newAccount(db);
    const node = await newNode(db, account.id);
    const deadline = new Date(Date.now() + 60_000);
    const parent = await db
      .insertInto("tasks")
      .values({
        difficulty: "COMPLEX",
        division_mode: "subtasks",
        classifier: "rules",
        account_id: account.id,
        deadline_at: deadline,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(parent).toMatchObject({ status: "queued", attempt: 0, prompt_tokens: 0, max_tokens: null, parent_id: null });
    expect(parent.deadline_at).toEqual(deadline);

    const child = await db
      .insertInto("tasks")
      .values({
        parent_id: parent.id,
        difficulty: "SIMPLE",
        tier: "PRO",
        node_id: node.id,
        status: "completed",
        completion_tokens: 512,
        ttft_ms: 180,
        total_ms: 2400,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(child).toMatchObject({ parent_id: parent.id, node_id: node.id, completion_tokens: 512, ttft_ms: 180 });

    const event = await db
      .insertInto("task_events")
      .values({ task_id: child.id, status: "completed", node_id: node.id, detail: "512 tokens" })
      .returningAll()
      .executeTakeFirstOrThrow();
    expectTypeOf(event.id).toEqualTypeOf<number>();
    expect(typeof event.id).toBe("number");
    expect(event.at).toBeInstanceOf(Date);

    const reputation = await db
      .insertInto("reputation_events")
      .values({
        node_id: node.id,
        account_id: account.id,
        rule: "timeout",
        delta: -20,
        task_id: child.id,
        evidence: json({ limitMs: 300_000, tags: ["slow"] }),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(typeof reputation.id).toBe("number");
    expect(reputation).toMatchObject({ delta: -20, period_key: null, evidence: { limitMs: 300_000, tags: ["slow"] } });
  });

  it("round-trips payouts with exact numerics and rate limits with upserts", async () => {
    const account = await newAccount(db);
    const month = "2025-01";
    const run = await db
      .insertInto("payout_runs")
      .values({ month, pool: 9_000_000_000_000, total_contribution: "12345.678901234567890123" })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(run).toMatchObject({ pool: 9_000_000_000_000, total_contribution: "12345.678901234567890123" });
    const payout = await db
      .insertInto("payouts")
      .values({ month, account_id: account.id, amount: 2_250_000_000_000, contribution: 3086.5, share: "0.25" })
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(payout).toMatchObject({ amount: 2_250_000_000_000, contribution: "3086.5", share: "0.25" });
  });

  it("returns int8 aggregates as numbers and refuses to round unsafe ones", async () => {
    const { n } = await db
      .selectFrom("accounts")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    expect(typeof n).toBe("number");
    const safe = await sql<{ v: number }>`select ${String(Number.MAX_SAFE_INTEGER)}::int8 as v`.execute(db);
    expect(safe.rows[0]?.v).toBe(Number.MAX_SAFE_INTEGER);
    await expect(sql`select 9007199254740993::int8 as v`.execute(db)).rejects.toThrow(/safe integer range/);
  });

  it("accepts every value of each TypeScript vocabulary", async () => {
    const account = await newAccount(db);
    const node = await newNode(db, account.id);
    for (const status of TASK_STATUSES) {
      const failure_reason = status === "failed" ? "node vanished" : null;
      await db.insertInto("tasks").values({ status, difficulty: "SIMPLE", failure_reason }).execute();
    }
    for (const difficulty of DIFFICULTIES)
      for (const division_mode of DIVISION_MODES) {
        await db.insertInto("tasks").values({ difficulty, division_mode }).execute();
      }
    for (const tier of NODE_TIERS)
      for (const status of NODE_STATUSES) {
        await db.updateTable("nodes").set({ tier, status }).where("id", "=", node.id).execute();
      }
    for (const rule of REPUTATION_RULES) {
      await db
        .insertInto("reputation_events")
        .values({ node_id: node.id, account_id: account.id, rule, delta: 1 })
        .execute();
    }
    for (const role of USER_ROLES) {
      await db
        .insertInto("users")
        .values({ email: `${role}-${unique()}@example.com`, password_hash: "x", role })
        .execute();
    }
  });

  it("stores SQL metacharacters verbatim", async () => {
    const tricky = `${EVIL} $1 $$ \\ "quoted" ; -- /* */ ünïcødé 🙂`;
    const account = await newAccount(db, EVIL);
    const node = await newNode(db, account.id, { id: `n-${unique()}${EVIL}`, model_name: tricky });
    const found = await db.selectFrom("nodes").select(["id", "model_name"]).where("model_name", "=", tricky).execute();
    expect(found).toEqual([{ id: node.id, model_name: tricky }]);
    const task = await db
      .insertInto("tasks")
      .values({ difficulty: "SIMPLE", status: "failed", failure_reason: tricky, client_address: EVIL })
      .returning(["failure_reason", "client_address"])
      .executeTakeFirstOrThrow();
    expect(task).toEqual({ failure_reason: tricky, client_address: EVIL });
    await db
      .updateTable("nodes")
      .set({ gpus: json([{ name: EVIL, vram_mb: 1 }]) })
      .where("id", "=", node.id)
      .execute();
    const gpus = await db.selectFrom("nodes").select("gpus").where("id", "=", node.id).executeTakeFirstOrThrow();
    expect(gpus.gpus).toEqual([{ name: EVIL, vram_mb: 1 }]);
    expect(
      (await db.selectFrom("accounts").select("label").where("id", "=", account.id).executeTakeFirstOrThrow()).label,
    ).toBe(EVIL);
    const echoed = await sql<{ v: string }>`select ${tricky}::text as v`.execute(db);
    expect(echoed.rows[0]?.v).toBe(tricky);
    // and the table is still there
    expect(
      (
        await db
          .selectFrom("nodes")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .executeTakeFirstOrThrow()
      ).n,
    ).toBeGreaterThan(0);
  });

  it("rejects data the constraints forbid", async () => {
    const account = await newAccount(db);
    const node = await newNode(db, account.id);
    const bad = <T>(value: unknown) => value as T;

    expect(
      (await rejection(db.updateTable("nodes").set({ reputation: 9.99 }).where("id", "=", node.id).execute())).code,
    ).toBe(CHECK_VIOLATION);
    await db.updateTable("nodes").set({ reputation: 10 }).where("id", "=", node.id).execute();
    expect(
      (
        await rejection(
          db
            .updateTable("nodes")
            .set({ tier: bad("ULTRA") })
            .where("id", "=", node.id)
            .execute(),
        )
      ).code,
    ).toBe(CHECK_VIOLATION);
    expect(
      (
        await rejection(
          db
            .updateTable("nodes")
            .set({ gpus: bad(json({ name: "not a list" })) })
            .where("id", "=", node.id)
            .execute(),
        )
      ).code,
    ).toBe(CHECK_VIOLATION);
    expect((await rejection(newNode(db, randomUUID()))).code).toBe(FOREIGN_KEY_VIOLATION);

    const task = (status: TaskStatus, failure_reason: string | null = null) =>
      db.insertInto("tasks").values({ difficulty: "SIMPLE", status, failure_reason }).execute();
    expect((await rejection(task(bad("exploded")))).code).toBe(CHECK_VIOLATION);
    expect((await rejection(task("failed"))).code).toBe(CHECK_VIOLATION);
    expect(
      (
        await rejection(
          db
            .insertInto("tasks")
            .values({ difficulty: bad("TRIVIAL") })
            .execute(),
        )
      ).code,
    ).toBe(CHECK_VIOLATION);

    expect((await rejection(db.insertInto("accounts").values({ key_hash: "not-a-sha256-hex" }).execute())).code).toBe(
      CHECK_VIOLATION,
    );
    const taken = await newAccount(db);
    expect((await rejection(db.insertInto("accounts").values({ key_hash: taken.key_hash }).execute())).code).toBe(
      UNIQUE_VIOLATION,
    );

    const email = `grace-${unique()}@example.com`;
    await db.insertInto("users").values({ email, password_hash: "x" }).execute();
    expect((await rejection(db.insertInto("users").values({ email, password_hash: "y" }).execute())).code).toBe(
      UNIQUE_VIOLATION,
    );
    expect(
      (await rejection(db.insertInto("users").values({ email: email.toUpperCase(), password_hash: "y" }).execute()))
        .code,
    ).toBe(CHECK_VIOLATION);
    expect(
      (
        await rejection(
          db
            .insertInto("users")
            .values({ email: `x-${email}`, password_hash: "y", role: bad("root") })
            .execute(),
        )
      ).code,
    ).toBe(CHECK_VIOLATION);

    const uptime = { node_id: node.id, account_id: account.id, rule: "uptime" as const, delta: 1 };
    await db
      .insertInto("reputation_events")
      .values({ ...uptime, period_key: "2025-03-01T10" })
      .execute();
    expect(
      (
        await rejection(
          db
            .insertInto("reputation_events")
            .values({ ...uptime, period_key: "2025-03-01T10" })
            .execute(),
        )
      ).code,
    ).toBe(UNIQUE_VIOLATION);
    // Rules without a period are not limited by the once-per-period key.
    await db
      .insertInto("reputation_events")
      .values([{ ...uptime }, { ...uptime }])
      .execute();
    expect(
      (
        await rejection(
          db
            .insertInto("reputation_events")
            .values({ ...uptime, rule: bad("bribe") })
            .execute(),
        )
      ).code,
    ).toBe(CHECK_VIOLATION);

    expect(
      (
        await rejection(
          db.insertInto("payout_runs").values({ month: "2025-13", pool: 1, total_contribution: 0 }).execute(),
        )
      ).code,
    ).toBe(CHECK_VIOLATION);
    expect(
      (
        await rejection(
          db
            .insertInto("payouts")
            .values({ month: "1999-01", account_id: account.id, amount: 1, contribution: 1, share: 1 })
            .execute(),
        )
      ).code,
    ).toBe(FOREIGN_KEY_VIOLATION);
    await db.insertInto("payout_runs").values({ month: "1999-02", pool: 100, total_contribution: 1 }).execute();
    const payout = { month: "1999-02", account_id: account.id, amount: 100, contribution: 1, share: 1 };
    await db.insertInto("payouts").values(payout).execute();
    expect((await rejection(db.insertInto("payouts").values(payout).execute())).code).toBe(UNIQUE_VIOLATION);
    expect(
      (
        await rejection(
          db
            .insertInto("payouts")
            .values({ ...payout, account_id: (await newAccount(db)).id, share: 1.5 })
            .execute(),
        )
      ).code,
    ).toBe(CHECK_VIOLATION);
  });
});
