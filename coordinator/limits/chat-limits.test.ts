// The chat limiter on every engine the run reaches, with an injected clock: rolling window, refusals, give-backs,
// subjects.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, testEngines, type TestDatabase } from "../../test/support/database.ts";
import { createAccount } from "../accounts/store.ts";
import { ChatLimiter, humanDuration, type ChatSubject, type MeteredEvent } from "./chat-limits.ts";

const HOUR = 3_600_000;
const T0 = Date.parse("2026-11-26T04:40:00Z");
const limits = { anonymousPerDay: 1, accountKeyPerDay: 3, userPerDay: 5, unlimitedAccountKeys: [] as string[] };

describe("humanDuration", () => {
  it.each([
    [86_399, "23 h 59 min"],
    [3_600, "1 h 0 min"],
    [245, "4 min 5 s"],
    [120, "2 min"],
    [12, "12 s"],
  ])("%i s reads %s", (seconds, text) => expect(humanDuration(seconds)).toBe(text));
});

describe.each(testEngines())("chat limiter on $name", ({ engine }) => {
  let database: TestDatabase;
  let now = T0;
  let counter = 0;
  const clock = () => now;
  /** A subject no other test touches. */
  const fresh = (limit: number, scope = "for anonymous use"): ChatSubject & { kind: "limited" } => ({
    kind: "limited",
    subject: `ip:198.51.100.${++counter}`,
    limit,
    scope,
  });

  beforeAll(async () => {
    database = await createTestDatabase({ engine });
  });
  afterAll(async () => {
    await database?.close();
  });

  it("refuses the second anonymous message for 24 h from the first, and a refusal does not move that", async () => {
    const limiter = new ChatLimiter(database.db, limits, { now: clock });
    const subject = fresh(1);
    now = T0;
    expect((await limiter.admitChat(subject)).ok).toBe(true);
    now = T0 + 1000;
    const refused = await limiter.admitChat(subject);
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error.code).toBe(Code.ResourceExhausted);
    expect(refused.error.rawMessage).toBe(
      "rate limit: 1 message per 24 h for anonymous use; next message allowed in 23 h 59 min (at 2026-11-27T04:40:00Z)",
    );
    expect(refused.retryAfterSeconds).toBe(86_399);
    expect(refused.error.metadata.get("retry-after")).toBe("86399");
    now = T0 + 12 * HOUR; // refused again halfway: the wait still ends 24 h after the admitted message
    const again = await limiter.admitChat(subject);
    expect(again.ok === false && again.retryAfterSeconds).toBe(12 * 3600);
    now = T0 + 24 * HOUR - 1000;
    expect((await limiter.admitChat(subject)).ok).toBe(false);
    now = T0 + 24 * HOUR + 1;
    expect((await limiter.admitChat(subject)).ok).toBe(true);
  });

  it(
    "counts in a rolling window: with 3 a day, the fourth waits for the oldest to leave, not for " + "midnight",
    async () => {
      const limiter = new ChatLimiter(database.db, limits, { now: clock });
      const subject = fresh(3, "with an account key");
      for (const hour of [0, 1, 2]) {
        now = T0 + hour * HOUR;
        expect((await limiter.admitChat(subject)).ok).toBe(true);
      }
      now = T0 + 3 * HOUR;
      const refused = await limiter.admitChat(subject);
      expect(refused.ok === false && refused.retryAfterSeconds).toBe(21 * 3600);
      expect(refused.ok === false && refused.error.rawMessage).toMatch(
        /^rate limit: 3 messages per 24 h with an account key; next message allowed in 21 h 0 min/,
      );
      now = T0 + 24 * HOUR + 1; // the 00:00 message left; the 01:00 and 02:00 ones still count
      expect((await limiter.admitChat(subject)).ok).toBe(true);
      const next = await limiter.admitChat(subject);
      expect(next.ok === false && next.retryAt?.toISOString()).toBe(new Date(T0 + 25 * HOUR).toISOString());
    },
  );

  it("gives a message back, one of two admitted in the same millisecond", async () => {
    const limiter = new ChatLimiter(database.db, limits, { now: clock });
    const subject = fresh(2);
    now = T0;
    const first = await limiter.admitChat(subject);
    const second = await limiter.admitChat(subject);
    expect((await limiter.admitChat(subject)).ok).toBe(false);
    if (!first.ok || !second.ok) throw new Error("expected both admitted");
    await limiter.giveBack(first.ticket!);
    expect((await limiter.admitChat(subject)).ok).toBe(true);
    expect((await limiter.admitChat(subject)).ok).toBe(false);
  });

  it(
    "meters an answer: gives back when no token came and the network could not serve, keeps the charge " + "otherwise",
    async () => {
      const limiter = new ChatLimiter(database.db, limits, { now: clock });
      now = T0;
      const run = async (events: MeteredEvent[], error?: ConnectError) => {
        const subject = fresh(1);
        const admitted = await limiter.admitChat(subject);
        if (!admitted.ok) throw new Error("expected admitted");
        async function* script(): AsyncGenerator<MeteredEvent> {
          yield* events;
          if (error) throw error;
        }
        await expect(async () => {
          for await (const _ of limiter.meter(script(), admitted.ticket)) void _;
        }).rejects.toBe(error);
        return (await limiter.admitChat(subject)).ok;
      };
      const queued: MeteredEvent = { type: "queued" };
      expect(await run([queued], new ConnectError("no node", Code.Unavailable))).toBe(true);
      expect(await run([], new ConnectError("busy", Code.ResourceExhausted))).toBe(true);
      expect(await run([], new ConnectError("no such model", Code.NotFound))).toBe(true);
      expect(await run([queued], new ConnectError("messages[0].content: too many chunks", Code.InvalidArgument))).toBe(
        true,
      );
      expect(await run([queued], new ConnectError("chunk 3 of 40 could not be read: …", Code.Internal))).toBe(true);
      expect(await run([{ type: "token" }], new ConnectError("lost", Code.Unavailable))).toBe(false);
      expect(await run([queued], new ConnectError("client left", Code.Canceled))).toBe(false);
      expect(await run([], new ConnectError("deadline", Code.DeadlineExceeded))).toBe(false);
    },
  );

  it("admits exactly the limit when many messages race for it", async () => {
    const limiter = new ChatLimiter(database.db, limits, { now: clock });
    const subject = fresh(3);
    now = T0;
    const results = await Promise.all(Array.from({ length: 12 }, () => limiter.admitChat(subject)));
    expect(results.filter((result) => result.ok)).toHaveLength(3);
  });

  it("turns callers into subjects: address (IPv6 by /64), account, user, and the exempt", async () => {
    const unlimited = await createAccount(database.db);
    const limited = await createAccount(database.db);
    const limiter = new ChatLimiter(
      database.db,
      { ...limits, unlimitedAccountKeys: [unlimited.key.replaceAll(" ", "")] },
      { now: clock },
    );
    const anonymous = { kind: "anonymous" as const };
    expect(await limiter.subjectFor({ principal: anonymous, clientAddress: "2001:db8:1:2:aaaa::1" })).toMatchObject({
      subject: "ip:2001:0db8:0001:0002::/64",
      limit: 1,
    });
    expect(await limiter.subjectFor({ principal: anonymous, clientAddress: "::ffff:203.0.113.9" })).toMatchObject({
      subject: "ip:203.0.113.9",
    });
    expect(
      await limiter.subjectFor({ principal: anonymous, requestAccountId: limited.id, clientAddress: "203.0.113.9" }),
    ).toMatchObject({ subject: `account:${limited.id}`, limit: 3 });
    expect(
      await limiter.subjectFor({ principal: { kind: "account", accountId: limited.id }, clientAddress: "203.0.113.9" }),
    ).toMatchObject({ subject: `account:${limited.id}` });
    const user = { kind: "user" as const, userId: "u1", role: "user" as const, accountId: null };
    expect(
      await limiter.subjectFor({ principal: user, requestAccountId: limited.id, clientAddress: "203.0.113.9" }),
    ).toMatchObject({ subject: "user:u1", limit: 5 });
    expect(await limiter.subjectFor({ principal: { ...user, role: "admin" }, clientAddress: "203.0.113.9" })).toEqual({
      kind: "exempt",
      reason: "admin",
    });
    expect(
      await limiter.subjectFor({ principal: anonymous, requestAccountId: unlimited.id, clientAddress: "203.0.113.9" }),
    ).toEqual({ kind: "exempt", reason: "unlimited account key" });
    expect(
      await limiter.subjectFor({ principal: { ...user, accountId: unlimited.id }, clientAddress: "203.0.113.9" }),
    ).toEqual({ kind: "exempt", reason: "unlimited account key" });
  });

  it("refuses every message when a limit is 0, without a wait that would help", async () => {
    const limiter = new ChatLimiter(database.db, { ...limits, anonymousPerDay: 0 }, { now: clock });
    const refused = await limiter.admitChat(
      await limiter.subjectFor({ principal: { kind: "anonymous" }, clientAddress: "192.0.2.200" }),
    );
    expect(refused.ok === false && refused.error.code).toBe(Code.PermissionDenied);
    expect(refused.ok === false && refused.retryAfterSeconds).toBeUndefined();
  });

  it("prunes subjects whose messages all left the window", async () => {
    const limiter = new ChatLimiter(database.db, limits, { now: clock });
    const old = fresh(1);
    const recent = fresh(1);
    now = T0 - 30 * HOUR;
    await limiter.admitChat(old);
    now = T0 - HOUR;
    await limiter.admitChat(recent);
    now = T0;
    await limiter.prune();
    const subjects = (await database.db.selectFrom("chat_admissions").select("subject").execute()).map(
      (row) => row.subject,
    );
    expect(subjects).toContain(recent.subject);
    expect(subjects).not.toContain(old.subject);
  });
});
