// NetworkService in memory over a real database and a real registry: every method, its limits and its permissions.
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createHandlerContext,
  createRouterTransport,
  type Client,
  type Interceptor,
} from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import type { Kysely, KyselyPlugin } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DivisionMode, Difficulty, Tier } from "../../gen/iris/v1/common_pb.ts";
import { NetworkService, TaskStatus, WatchStatsRequestSchema } from "../../gen/iris/v1/network_pb.ts";
import { createTestDatabase, type TestDatabase } from "../../test/support/database.ts";
import { principalKey, type Principal } from "../accounts/principal.ts";
import type { Database } from "../db/schema.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { T0 } from "../../test/support/live-nodes.ts";
import { ALICE_KEY, BOB_KEY, seedNetwork } from "../../test/support/network-seed.ts";
import { networkService, type NetworkServiceDeps } from "./service.ts";

const PRINCIPAL_HEADER = "x-test-principal";

/** Stands in for the auth interceptor: the test names the caller in a header. */
const principalFromHeader: Interceptor = (next) => async (req) => {
  const named = req.header.get(PRINCIPAL_HEADER);
  if (named) req.contextValues.set(principalKey, JSON.parse(named) as Principal);
  return next(req);
};
const as = (principal: Principal) => ({ headers: { [PRINCIPAL_HEADER]: JSON.stringify(principal) } });
const admin: Principal = { kind: "user", userId: "u-admin", role: "admin", accountId: null };
const plainUser: Principal = { kind: "user", userId: "u-plain", role: "user", accountId: null };

async function failure(call: Promise<unknown>): Promise<Code | undefined> {
  try {
    await call;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

function serve(deps: NetworkServiceDeps): Client<typeof NetworkService> {
  const transport = createRouterTransport((router) => router.service(NetworkService, networkService(deps)), {
    router: { interceptors: [principalFromHeader, createValidateInterceptor()] },
  });
  return createClient(NetworkService, transport);
}

describe("NetworkService", () => {
  let test: TestDatabase;
  let db: Kysely<Database>;
  let client: Client<typeof NetworkService>;
  const registry = new NodeRegistry();
  const ids = { alice: "", bob: "" };
  const deps = () => ({ db, registry, orchestrator: { queueLength: 3 }, tokensPerSecond: () => 42.5 });

  beforeAll(async () => {
    test = await createTestDatabase();
    db = test.db;
    Object.assign(ids, await seedNetwork(db, registry));
    client = serve(deps());
  });
  afterAll(() => test?.close());

  it("GetStats: live nodes by tier, request totals, running tasks, queue and throughput", async () => {
    const before = Date.now();
    // the network's own questions are not requests: a canary (and a failed one) are left out of the totals
    const canaries = await db
      .insertInto("tasks")
      .values([
        { difficulty: "SIMPLE", status: "completed", classifier: "canary", node_id: "live-basic" },
        {
          difficulty: "SIMPLE",
          status: "failed",
          classifier: "canary",
          node_id: "live-basic",
          failure_reason: "wrong code",
        },
      ])
      .returning("id")
      .execute();
    try {
      const { stats } = await serve(deps()).getStats({});
      expect(stats?.nodesByTier.map((t) => [t.tier, t.online])).toEqual([
        [Tier.BASIC, 1],
        [Tier.MID, 0],
        [Tier.PRO, 1],
      ]);
      // completed: the subtasks request (not its part) and one single request; failed: one
      expect(stats).toMatchObject({
        nodesOnline: 2,
        tasksCompleted: 2n,
        tasksFailed: 1n,
        tasksRunning: 3,
        queueLength: 3,
        tokensPerSecond: 42.5,
      });
      expect(Number(stats!.atUnixMs)).toBeGreaterThanOrEqual(before);
    } finally {
      await db
        .deleteFrom("tasks")
        .where(
          "id",
          "in",
          canaries.map((c) => c.id),
        )
        .execute();
    }
  });

  describe("WatchStats", () => {
    it("streams a sample every interval, shares one count query among watchers, and ends on abort", async () => {
      let queries = 0;
      const counter: KyselyPlugin = {
        transformQuery: (args) => (queries++, args.node),
        transformResult: async (args) => args.result,
      };
      let samples = 0;
      const watched = serve({ ...deps(), db: db.withPlugin(counter), tokensPerSecond: () => (samples++, 1) });
      const watch = async () => {
        const abort = new AbortController();
        const times: number[] = [];
        try {
          for await (const { stats } of watched.watchStats({ intervalMs: 250 }, { signal: abort.signal })) {
            expect(stats?.nodesOnline).toBe(2);
            times.push(Date.now());
            if (times.length === 3) abort.abort();
          }
        } catch (err) {
          expect(ConnectError.from(err).code).toBe(Code.Canceled);
        }
        return times;
      };
      const [a, b] = await Promise.all([watch(), watch()]);
      for (const times of [a, b]) {
        expect(times).toHaveLength(3);
        expect(times[2]! - times[0]!).toBeGreaterThanOrEqual(480);
      }
      expect(queries).toBeLessThanOrEqual(4); // 6 samples, at most one count per 250 ms for both
      const taken = samples;
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(samples).toBe(taken); // both handlers stopped sampling
    });

    it("the handler returns as soon as its call is aborted, mid-wait and without another sample", async () => {
      let samples = 0;
      const impl = networkService({ ...deps(), tokensPerSecond: () => (samples++, 0) });
      const ctx = createHandlerContext({
        service: NetworkService,
        method: NetworkService.method.watchStats,
        protocolName: "connect",
        requestMethod: "POST",
        url: "/",
      });
      const stream = impl.watchStats!(create(WatchStatsRequestSchema, { intervalMs: 60_000 }), ctx)[
        Symbol.asyncIterator
      ]();
      expect((await stream.next()).done).toBe(false);
      const waiting = stream.next(); // now in its 60 s wait
      await new Promise((resolve) => setTimeout(resolve, 50));
      const abortedAt = Date.now();
      ctx.abort();
      expect((await waiting).done).toBe(true);
      expect(Date.now() - abortedAt).toBeLessThan(30_000); // half the 60 s wait: it did not wait it out
      expect(samples).toBe(1);
    });

    it("sends every 1000 ms when the interval is 0, and rejects intervals outside 250..60000", async () => {
      const abort = new AbortController();
      const times: number[] = [];
      await failure(
        (async () => {
          for await (const _ of client.watchStats({ intervalMs: 0 }, { signal: abort.signal })) {
            times.push(Date.now());
            if (times.length === 2) abort.abort();
          }
        })(),
      );
      expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
      const drain = async (intervalMs: number) => {
        for await (const _ of client.watchStats({ intervalMs })) break;
      };
      expect(await failure(drain(100))).toBe(Code.InvalidArgument);
      expect(await failure(drain(60_001))).toBe(Code.InvalidArgument);
    });
  });

  it(
    "ListNodes: connected nodes first with live figures, then the rest by reputation; online_only; " + "limits",
    async () => {
      const { nodes } = await client.listNodes({});
      expect(nodes.map((n) => [n.nodeId, n.online, n.reputation])).toEqual([
        ["live-pro", true, 180],
        ["live-basic", true, 125],
        ["off-1", false, 150],
        ["off-3", false, 150],
        ["off-2", false, 90],
        ["closing", false, 60],
      ]);
      expect(nodes[0]).toMatchObject({
        tier: Tier.PRO,
        modelName: "live-pro-model.Q4_K_M",
        parameterCount: 13_000_000_000n,
        quantization: "Q4_K_M",
        tokensPerSecond: 33.5,
        load: 0.5,
        activeTasks: 2,
        maxConcurrentTasks: 4,
        lastSeenUnixMs: BigInt(T0),
        suspended: false,
      });
      expect(nodes[0]!.gpus.map((g) => [g.name, g.vramTotalMb, g.vramUsedMb])).toEqual([["RTX 4090", 24_564n, 9_000n]]);
      expect(nodes[2]).toMatchObject({
        tier: Tier.MID,
        modelName: "off-1-stored",
        quantization: "",
        activeTasks: 0,
        lastSeenUnixMs: BigInt(T0 - 60_000),
      });
      expect(nodes[2]!.gpus.map((g) => [g.name, g.vramTotalMb])).toEqual([["RTX 3060", 12_288n]]);

      expect((await client.listNodes({ onlineOnly: true })).nodes.map((n) => n.nodeId)).toEqual([
        "live-pro",
        "live-basic",
      ]);
      expect((await client.listNodes({ limit: 1 })).nodes.map((n) => n.nodeId)).toEqual(["live-pro"]);
      expect((await client.listNodes({ limit: 3 })).nodes.map((n) => n.nodeId)).toEqual([
        "live-pro",
        "live-basic",
        "off-1",
      ]);
      expect(await failure(client.listNodes({ limit: 1001 }))).toBe(Code.InvalidArgument);
    },
  );

  it("GetLeaderboard: recorded reputation, shared ranks for ties, completed-task counts, limit", async () => {
    const { entries } = await client.getLeaderboard({});
    expect(entries.map((e) => [e.rank, e.nodeId, e.reputation, e.tier, e.tasksCompleted])).toEqual([
      [1, "live-pro", 180, Tier.PRO, 2n],
      [2, "off-1", 150, Tier.MID, 1n],
      [2, "off-3", 150, Tier.MID, 0n],
      [4, "live-basic", 120, Tier.BASIC, 0n],
      [5, "off-2", 90, Tier.BASIC, 0n],
      [6, "closing", 60, Tier.MID, 0n],
    ]);
    expect((await client.getLeaderboard({ limit: 2 })).entries.map((e) => e.nodeId)).toEqual(["live-pro", "off-1"]);
  });

  it("ListTasks: newest first, 50 by default, by node, every field mapped", async () => {
    const { tasks } = await client.listTasks({});
    expect(tasks).toHaveLength(50);
    expect(tasks.slice(0, 5).map((t) => t.status)).toEqual([
      TaskStatus.QUEUED,
      TaskStatus.FAILED,
      TaskStatus.COMPLETED,
      TaskStatus.COMPLETED,
      TaskStatus.COMPLETED,
    ]);
    const [queued, failed, , part, parent] = tasks;
    expect(queued).toMatchObject({
      nodeId: "",
      tier: Tier.UNSPECIFIED,
      divisionMode: DivisionMode.SINGLE,
      parentTaskId: "",
    });
    expect(failed).toMatchObject({ failureReason: "node timed out", tier: Tier.BASIC, nodeId: "live-basic" });
    expect(part).toMatchObject({
      difficulty: Difficulty.COMPLEX,
      tier: Tier.PRO,
      nodeId: "live-pro",
      timeToFirstTokenMs: 80,
      totalMs: 2_500,
      divisionMode: DivisionMode.SUBTASKS,
      parentTaskId: parent!.taskId,
      createdAtUnixMs: BigInt(T0 + 2000),
    });
    expect([part!.usage?.promptTokens, part!.usage?.completionTokens]).toEqual([12, 345]);

    expect((await client.listTasks({ nodeId: "live-pro" })).tasks.map((t) => t.taskId)).toEqual([
      part!.taskId,
      parent!.taskId,
    ]);
    expect((await client.listTasks({ limit: 2 })).tasks.map((t) => t.taskId)).toEqual([queued!.taskId, failed!.taskId]);
    expect((await client.listTasks({ limit: 1000 })).tasks).toHaveLength(60);
  });

  describe("GetReputationHistory", () => {
    const history = (subject: { case: "nodeId" | "accountKey"; value: string }, principal?: Principal, limit = 0) =>
      client.getReputationHistory({ subject, limit }, principal && as(principal)).then((r) => r.events);

    it("by node: newest first with the score after each event, evidence as text; limit", async () => {
      const events = await history({ case: "nodeId", value: "off-1" });
      expect(events.map((e) => [e.rule, e.delta, e.reputationAfter, e.atUnixMs])).toEqual([
        ["timeout", -10, 150, BigInt(T0 + 3000)],
        ["admin", 50, 160, BigInt(T0 + 2000)],
        ["task_completed", 10, 110, BigInt(T0 + 1000)],
      ]);
      expect(events.map((e) => e.evidence)).toEqual(["timed out after 60 s", '{"note":"restored"}', ""]);
      expect(await history({ case: "nodeId", value: "off-1" }, undefined, 2)).toHaveLength(2);
    });

    it("by node: empty for a node without events, NotFound for an unknown node", async () => {
      expect(await history({ case: "nodeId", value: "off-3" })).toEqual([]);
      expect(await failure(history({ case: "nodeId", value: "nobody" }))).toBe(Code.NotFound);
    });

    it("by account: the events credited to it, for the account itself, its linked user or an admin", async () => {
      const mine = [
        ["live-pro", "admin", 180],
        ["off-1", "timeout", 150],
        ["off-1", "task_completed", 110],
      ];
      const read = async (principal: Principal, key = ALICE_KEY) =>
        (await history({ case: "accountKey", value: key }, principal)).map((e) => [
          e.nodeId,
          e.rule,
          e.reputationAfter,
        ]);
      expect(await read({ kind: "account", accountId: ids.alice })).toEqual(mine);
      expect(await read({ kind: "account", accountId: ids.alice }, ALICE_KEY.replaceAll(" ", ""))).toEqual(mine);
      expect(await read({ kind: "user", userId: "u-alice", role: "user", accountId: ids.alice })).toEqual(mine);
      expect(await read(admin)).toEqual(mine);
      expect(await read(admin, BOB_KEY)).toEqual([["off-1", "admin", 160]]);
    });

    it(
      "by account: Unauthenticated for anonymous callers, PermissionDenied for others, NotFound only for " + "admins",
      async () => {
        const bob: Principal = { kind: "account", accountId: ids.bob };
        expect(await failure(history({ case: "accountKey", value: ALICE_KEY }))).toBe(Code.Unauthenticated);
        expect(await failure(history({ case: "accountKey", value: ALICE_KEY }, bob))).toBe(Code.PermissionDenied);
        expect(await failure(history({ case: "accountKey", value: ALICE_KEY }, plainUser))).toBe(Code.PermissionDenied);
        // an unknown key looks the same as someone else's to non-admins, so keys cannot be probed
        expect(await failure(history({ case: "accountKey", value: "9999 9999 9999 9999" }, bob))).toBe(
          Code.PermissionDenied,
        );
        expect(await failure(history({ case: "accountKey", value: "9999 9999 9999 9999" }, admin))).toBe(Code.NotFound);
        expect(await failure(history({ case: "accountKey", value: "1234" }, admin))).toBe(Code.InvalidArgument);
        expect(await failure(client.getReputationHistory({}))).toBe(Code.InvalidArgument);
      },
    );
  });

  it("ListPayouts: admins only; newest month first, by month", async () => {
    const { payouts } = await client.listPayouts({}, as(admin));
    expect(payouts.map((p) => [p.month, p.accountId, p.amount, p.contribution])).toEqual([
      ["2029-12", ids.bob, 100n, 10],
      ["2029-11", ids.alice, 67n, 20],
      ["2029-11", ids.bob, 33n, 10],
    ]);
    expect((await client.listPayouts({ month: "2029-11" }, as(admin))).payouts.map((p) => p.amount)).toEqual([
      67n,
      33n,
    ]);
    expect(await failure(client.listPayouts({ month: "2029-13" }, as(admin)))).toBe(Code.InvalidArgument);
    expect(await failure(client.listPayouts({}))).toBe(Code.Unauthenticated);
    expect(await failure(client.listPayouts({}, as({ kind: "account", accountId: ids.alice })))).toBe(
      Code.Unauthenticated,
    );
    expect(await failure(client.listPayouts({}, as(plainUser)))).toBe(Code.PermissionDenied);
  });

  it("ClearNode: admins only; answers with the node as it is now, NotFound for an unknown node", async () => {
    expect((await client.clearNode({ nodeId: "off-1" }, as(admin))).node).toMatchObject({
      nodeId: "off-1",
      online: false,
      suspended: false,
    });
    expect((await client.clearNode({ nodeId: "live-pro" }, as(admin))).node).toMatchObject({
      nodeId: "live-pro",
      online: true,
      activeTasks: 2,
    });
    expect(await failure(client.clearNode({ nodeId: "nobody" }, as(admin)))).toBe(Code.NotFound);
    expect(await failure(client.clearNode({ nodeId: "off-1" }))).toBe(Code.Unauthenticated);
    expect(await failure(client.clearNode({ nodeId: "off-1" }, as({ kind: "account", accountId: ids.alice })))).toBe(
      Code.Unauthenticated,
    );
    expect(await failure(client.clearNode({ nodeId: "off-1" }, as(plainUser)))).toBe(Code.PermissionDenied);
  });
});
