// Spot checks and canaries over real sockets: a dishonest node is caught by a second, more reputable node of the
// same model, penalised with evidence, suspended after repeated mismatches and cleared by an admin; canaries
// catch it with a known answer.
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { NetworkService, TaskPurpose } from "../gen/iris/v1/network_pb.ts";
import type { TaskAssign, TaskPayload } from "../gen/iris/v1/node_pb.ts";
import { answerHash } from "../coordinator/tasks/division/compare.ts";
import { recordMismatch } from "../coordinator/nodes/suspension.ts";
import { databaseSource } from "./support/database.ts";
import { connectFailure } from "./support/errors.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import {
  alter,
  startScriptedNode,
  type Script,
  type ScriptedNode,
  type ScriptedNodeOptions,
} from "./support/scripted-node.ts";

const jwtSecret = "a-test-secret-that-is-at-least-32-characters-long";
const adminEmail = "root@iris.test";
const question = "Translate 'good morning' to French.";
const honestAnswer = "Bonjour, as one says in the morning.";

/** Answers questions with one fixed text, and canaries with their code, as a working model would. */
function model(_: unknown, payload: TaskPayload): Script {
  const prompt = payload.messages.at(-1)?.content ?? "";
  const code = /nothing else: (\S+)$/.exec(prompt)?.[1];
  return { tokens: code ? [code] : honestAnswer.split(/(?= )/) };
}

function bearer(token: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
}

async function startNetwork(env: Record<string, string>) {
  const coordinator = await startTestCoordinator({
    HEARTBEAT_INTERVAL_MS: "200",
    QUEUE_MAX_WAIT_MS: "2000",
    JWT_SECRET: jwtSecret,
    ADMIN_EMAILS: adminEmail,
    ...env,
  });
  const transport = createGrpcTransport({ baseUrl: coordinator.url });
  const accountKey = (await createClient(AccountService, transport).generateKey({})).accountKey;
  return { coordinator, accountKey, inference: createClient(InferenceService, transport) };
}

describe("spot checks", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;
  let nodes: ScriptedNode[] = [];

  beforeAll(async () => {
    ({ coordinator, accountKey, inference } = await startNetwork({
      SPOT_CHECK_FRACTION: "1",
      SPOT_CHECK_SUSPEND_AFTER: "2",
    }));
  });
  afterEach(async () => {
    for (const node of nodes) node.kill();
    await Promise.all(nodes.map((node) => node.ended));
    await expect.poll(() => [...coordinator.registry.nodes()].every((n) => !n.connected)).toBe(true);
    nodes = [];
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  async function node(options: Partial<ScriptedNodeOptions> & { nodeId: string }): Promise<ScriptedNode> {
    const started = startScriptedNode({ baseUrl: coordinator.url, accountKey, script: model, ...options });
    nodes.push(started);
    await started.registered;
    return started;
  }

  /** Raises a node's recorded and live reputation (a long, honest record). */
  async function trust(nodeId: string, reputation: number) {
    await coordinator.db.updateTable("nodes").set({ reputation }).where("id", "=", nodeId).execute();
    coordinator.registry.get(nodeId)!.reputation = reputation;
  }

  async function ask(): Promise<{ taskId: string; nodeId: string; text: string }> {
    let taskId = "";
    let nodeId = "";
    let text = "";
    for await (const response of inference.chat({ params: { messages: [{ role: 2, content: question }] } })) {
      if (response.event.case === "accepted") ({ taskId, nodeId } = response.event.value);
      if (response.event.case === "token") text += response.event.value.text;
    }
    return { taskId, nodeId, text };
  }

  const penalties = async (nodeId: string) => {
    await coordinator.reputation.settled();
    return coordinator.db
      .selectFrom("reputation_events")
      .select(["rule", "delta", "task_id", "evidence"])
      .where("node_id", "=", nodeId)
      .where("rule", "=", "invalid_response")
      .orderBy("id")
      .execute();
  };
  const checksOf = async (taskId: string) => {
    await coordinator.journal.flush();
    return coordinator.db.selectFrom("tasks").selectAll().where("parent_id", "=", taskId).execute();
  };

  it("re-runs an answer on a more reputable node of the same model; an honest answer passes", async () => {
    const first = await node({ nodeId: "honest-fast", tokensPerSecond: 29 });
    const second = await node({ nodeId: "honest-trusted", tokensPerSecond: 11 });
    await trust("honest-trusted", 200);
    const answer = await ask();
    expect(answer).toMatchObject({ nodeId: "honest-fast", text: honestAnswer });
    await expect
      .poll(async () => (await checksOf(answer.taskId)).map((t) => t.status), { timeout: 5_000 })
      .toEqual(["completed"]);
    const [check] = await checksOf(answer.taskId);
    expect(check).toMatchObject({ node_id: "honest-trusted", classifier: "spot_check", division_mode: "single" });
    // ListTasks (and the dashboard) tell the check from the user's request
    const listed = (await createClient(NetworkService, createGrpcTransport({ baseUrl: coordinator.url })).listTasks({}))
      .tasks;
    expect(listed.find((t) => t.taskId === answer.taskId)).toMatchObject({
      purpose: TaskPurpose.REQUEST,
      parentTaskId: "",
    });
    expect(listed.find((t) => t.taskId === check!.id)).toMatchObject({
      purpose: TaskPurpose.SPOT_CHECK,
      parentTaskId: answer.taskId,
    });
    // both ran with deterministic sampling and the same seed
    expect(first.payloads[0]).toMatchObject({ temperature: 0 });
    expect(second.payloads[0]).toMatchObject({ temperature: 0, seed: first.payloads[0]!.seed });
    expect(first.payloads[0]!.seed).toBeDefined();
    await coordinator.reputation.settled();
    expect(await penalties("honest-fast")).toEqual([]);
    // the check is judged only on a mismatch: the checker earns nothing for it
    const rules = await coordinator.db
      .selectFrom("reputation_events")
      .select("rule")
      .where("node_id", "=", "honest-trusted")
      .execute();
    expect(rules).toEqual([]);
  });

  it(
    "catches the dishonest node: −50 with both outputs' hashes; repeated mismatches suspend it until an admin " +
      "clears it",
    async () => {
      let cheat = await node({ nodeId: "cheat", dishonest: true, tokensPerSecond: 29 });
      await node({ nodeId: "judge", tokensPerSecond: 11 });
      await trust("judge", 200);

      const first = await ask();
      // the user got the dishonest answer (the check runs afterwards, off the user's path)
      expect(first).toMatchObject({ nodeId: "cheat", text: alter(honestAnswer) });
      await expect.poll(async () => (await penalties("cheat")).length, { timeout: 5_000 }).toBe(1);
      const [penalty] = await penalties("cheat");
      expect(penalty).toMatchObject({ delta: -50, task_id: first.taskId });
      const [check] = await checksOf(first.taskId);
      expect(penalty!.evidence).toMatchObject({
        check: "spot_check",
        answerSha256: answerHash(alter(honestAnswer)),
        referenceSha256: answerHash(honestAnswer),
        referenceFrom: "judge",
        referenceTaskId: check!.id,
        threshold: 0.9,
      });
      expect(coordinator.registry.get("cheat")!.suspended).toBe(false);

      // the second mismatch reaches SPOT_CHECK_SUSPEND_AFTER=2
      expect((await ask()).nodeId).toBe("cheat");
      await expect.poll(() => coordinator.registry.get("cheat")!.suspended, { timeout: 5_000 }).toBe(true);
      const row = await coordinator.db
        .selectFrom("nodes")
        .select(["mismatches", "suspended_at"])
        .where("id", "=", "cheat")
        .executeTakeFirstOrThrow();
      expect(row.mismatches).toBe(2);
      expect(row.suspended_at).toBeInstanceOf(Date);

      // suspended: the faster node gets no work, even after reconnecting
      cheat.kill();
      await cheat.ended;
      cheat = await node({ nodeId: "cheat", dishonest: true, tokensPerSecond: 29 });
      expect(coordinator.registry.get("cheat")!.suspended).toBe(true);
      expect(await ask()).toMatchObject({ nodeId: "judge", text: honestAnswer });
      expect(cheat.assigns).toHaveLength(0);

      const network = createClient(NetworkService, createGrpcTransport({ baseUrl: coordinator.url }));
      const listed = await network.listNodes({ onlineOnly: true });
      expect(listed.nodes.find((n) => n.nodeId === "cheat")?.suspended).toBe(true);
      expect((await connectFailure(network.clearNode({ nodeId: "cheat" }))).code).toBe(Code.Unauthenticated);

      const accounts = createClient(AccountService, createGrpcTransport({ baseUrl: coordinator.url }));
      const token = (await accounts.register({ email: adminEmail, password: "correct horse battery staple" })).token!
        .accessToken;
      const admin = createClient(
        NetworkService,
        createGrpcTransport({ baseUrl: coordinator.url, interceptors: [bearer(token)] }),
      );
      const cleared = await admin.clearNode({ nodeId: "cheat" });
      expect(cleared.node).toMatchObject({ nodeId: "cheat", suspended: false });
      expect(coordinator.registry.get("cheat")!.suspended).toBe(false);
      expect(
        await coordinator.db
          .selectFrom("nodes")
          .select(["mismatches", "suspended_at"])
          .where("id", "=", "cheat")
          .executeTakeFirstOrThrow(),
      ).toEqual({ mismatches: 0, suspended_at: null });
      expect((await ask()).nodeId).toBe("cheat");
    },
  );
});

describe("spot-check coverage", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;
  let nodes: ScriptedNode[] = [];

  beforeAll(async () => {
    ({ coordinator, accountKey, inference } = await startNetwork({
      SPOT_CHECK_FRACTION: "1",
      SPOT_CHECK_SUSPEND_AFTER: "100",
    }));
  });
  afterEach(async () => {
    for (const node of nodes) node.kill();
    await Promise.all(nodes.map((node) => node.ended));
    await expect.poll(() => [...coordinator.registry.nodes()].every((n) => !n.connected)).toBe(true);
    nodes = [];
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  /** Three nodes of one model, all at the starting reputation of 100, the first the fastest. */
  async function equals(prefix: string, options: Partial<ScriptedNodeOptions>[] = []): Promise<ScriptedNode[]> {
    const speeds = [29, 20, 11];
    const started = speeds.map((tokensPerSecond, i) =>
      startScriptedNode({
        baseUrl: coordinator.url,
        accountKey,
        nodeId: `${prefix}-${i}`,
        tokensPerSecond,
        script: model,
        ...options[i],
      }),
    );
    nodes.push(...started);
    await Promise.all(started.map((node) => node.registered));
    for (let i = 0; i < speeds.length; i++) expect(coordinator.registry.get(`${prefix}-${i}`)!.reputation).toBe(100);
    return started;
  }

  async function ask(): Promise<string> {
    let nodeId = "";
    for await (const response of inference.chat({ params: { messages: [{ role: 2, content: question }] } })) {
      if (response.event.case === "accepted") nodeId = response.event.value.nodeId;
    }
    return nodeId;
  }

  const coverage = async () => {
    await coordinator.journal.flush();
    const { nodes: listed } = await createClient(
      NetworkService,
      createGrpcTransport({ baseUrl: coordinator.url }),
    ).listNodes({ onlineOnly: true });
    return new Map(listed.map((n) => [n.nodeId, n.spotChecks!]));
  };
  const settledChecks = async () => {
    // every check has ended: no node runs anything
    await expect
      .poll(() => [...coordinator.registry.nodes()].every((n) => n.tasks.size === 0), { timeout: 10_000 })
      .toBe(true);
    await coordinator.journal.flush();
  };

  it(
    "checks the top node too: at fraction 1 every answer of every node is re-run, and ListNodes shows " + "it",
    async () => {
      const slow = { script: (a: TaskAssign, p: TaskPayload) => ({ ...model(a, p), delayMs: 40 }) };
      await equals("eq", [slow, slow, slow]);
      // the fastest node takes every request when they come one at a time (it was never checked before: #17)
      for (let i = 0; i < 5; i++) expect(await ask()).toBe("eq-0");
      await settledChecks();
      let seen = await coverage();
      expect(seen.get("eq-0")).toMatchObject({ windowHours: 24, answers: 5, checked: 5 });
      expect(seen.get("eq-0")!.lastCheckedUnixMs).toBeGreaterThan(0n);
      expect(seen.get("eq-1")!.checksRun + seen.get("eq-2")!.checksRun).toBe(5);
      // three at once: every node answers one; the checks wait for a free node of the same model
      expect(new Set(await Promise.all([ask(), ask(), ask()]))).toEqual(new Set(["eq-0", "eq-1", "eq-2"]));
      await expect
        .poll(async () => [...(await coverage()).values()].map((c) => c.answers - c.checked), {
          timeout: 20_000,
          interval: 200,
        })
        .toEqual([0, 0, 0]);
      seen = await coverage();
      for (const id of ["eq-0", "eq-1", "eq-2"]) expect(seen.get(id)!.checked, id).toBeGreaterThan(0);
      expect(seen.get("eq-0")!.checked).toBe(6);
      await coordinator.reputation.settled();
      expect(
        await coordinator.db
          .selectFrom("reputation_events")
          .select("node_id")
          .where("rule", "=", "invalid_response")
          .execute(),
      ).toEqual([]);
    },
  );

  async function askForTask(): Promise<string> {
    let taskId = "";
    for await (const r of inference.chat({ params: { messages: [{ role: 2, content: question }] } }))
      if (r.event.case === "accepted") taskId = r.event.value.taskId;
    return taskId;
  }
  const penalties = async () => {
    await coordinator.journal.flush();
    await coordinator.reputation.settled();
    return coordinator.db
      .selectFrom("reputation_events")
      .select(["node_id", "task_id", "evidence"])
      .where("rule", "=", "invalid_response")
      .execute();
  };
  const children = async (taskId: string) =>
    (
      await coordinator.db
        .selectFrom("tasks")
        .select(["node_id", "classifier", "status"])
        .where("parent_id", "=", taskId)
        .execute()
    ).sort((a, b) => a.node_id!.localeCompare(b.node_id!));
  const completedCheck = (nodeId: string) => ({ node_id: nodeId, classifier: "spot_check", status: "completed" });

  it(
    "equal reputations disagree: a third node of the model referees, and the cheat that answered is the " + "mismatch",
    async () => {
      const [cheat] = await equals("ref", [{ dishonest: true }]);
      const taskId = await askForTask();
      expect(cheat!.assigns).toHaveLength(1);
      await expect.poll(async () => (await penalties()).length, { timeout: 10_000 }).toBe(1);
      expect((await penalties())[0]).toMatchObject({
        node_id: "ref-0",
        task_id: taskId,
        evidence: { check: "spot_check", referenceSha256: answerHash(honestAnswer) },
      });
      // the check and the referee's run are both children of the request
      expect(await children(taskId)).toEqual([completedCheck("ref-1"), completedCheck("ref-2")]);
    },
  );

  it(
    "a more reputable cheat that checks an honest answer is the mismatch: reputation does not outvote the " + "referee",
    async () => {
      await equals("rep", [{}, {}, { dishonest: true }]);
      await coordinator.db.updateTable("nodes").set({ reputation: 400 }).where("id", "=", "rep-2").execute();
      coordinator.registry.get("rep-2")!.reputation = 400; // the preferred checker
      const taskId = await askForTask();
      await expect
        .poll(async () => (await penalties()).filter((p) => p.node_id === "rep-2").length, { timeout: 10_000 })
        .toBe(1);
      const rows = await children(taskId);
      expect(rows).toEqual([completedCheck("rep-1"), completedCheck("rep-2")]);
      const [penalty] = (await penalties()).filter((p) => p.node_id === "rep-2");
      // judged on its own check's task; the honest answer is the reference
      expect(penalty!.task_id).not.toBe(taskId);
      expect(penalty).toMatchObject({
        evidence: {
          check: "spot_check",
          answerSha256: answerHash(alter(honestAnswer)),
          referenceSha256: answerHash(honestAnswer),
          referenceFrom: "rep-0",
          referenceTaskId: taskId,
        },
      });
      expect((await penalties()).filter((p) => p.node_id!.startsWith("rep-") && p.node_id !== "rep-2")).toEqual([]);
    },
  );
});

describe("suspension across coordinators", () => {
  const shared = databaseSource().kind === "postgres";
  (shared ? it : it.skip)(
    shared
      ? "a node connected to one coordinator is suspended by a mismatch another one counted, and cleared by an admin " +
          "there"
      : "suspension across coordinators (skipped: needs a PostgreSQL server; in-memory PGlite belongs to one process)",
    async () => {
      const sync = { SUSPENSION_SYNC_MS: "100" };
      const { coordinator: first, accountKey } = await startNetwork(sync);
      const second = await startTestCoordinator({
        ...sync,
        HEARTBEAT_INTERVAL_MS: "200",
        QUEUE_MAX_WAIT_MS: "300",
        JWT_SECRET: jwtSecret,
        ADMIN_EMAILS: adminEmail,
        DATABASE_URL: first.config.database.url!,
        COORDINATOR_INSTANCE: "second",
      });
      const cheat = startScriptedNode({ baseUrl: second.url, accountKey, nodeId: "roamer", script: model });
      try {
        await cheat.registered;
        const ask = () =>
          createClient(InferenceService, createGrpcTransport({ baseUrl: second.url })).chat({
            params: { messages: [{ role: 2, content: question }] },
          });
        // the node's earlier task on the first coordinator failed its spot check after the node moved: the first
        // coordinator counts the mismatch that reaches the limit
        await recordMismatch(first.db, "roamer", 1);
        await expect.poll(() => second.registry.get("roamer")!.suspended, { timeout: 5_000 }).toBe(true);
        expect((await connectFailure(drain(ask()))).code).toBe(Code.Unavailable);
        expect(cheat.assigns).toHaveLength(0);
        // an admin clears it on the first coordinator; the second one lets it work again
        const token = (
          await createClient(AccountService, createGrpcTransport({ baseUrl: first.url })).register({
            email: adminEmail,
            password: "correct horse battery staple",
          })
        ).token!.accessToken;
        await createClient(
          NetworkService,
          createGrpcTransport({ baseUrl: first.url, interceptors: [bearer(token)] }),
        ).clearNode({ nodeId: "roamer" });
        await expect.poll(() => second.registry.get("roamer")!.suspended, { timeout: 5_000 }).toBe(false);
        await drain(ask());
        expect(cheat.assigns).toHaveLength(1);
      } finally {
        cheat.kill();
        await second.close();
        await first.close();
      }
    },
  );
});

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream);
}

describe("canaries", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;

  beforeAll(async () => {
    ({ coordinator, accountKey } = await startNetwork({ CANARY_INTERVAL_MS: "150" }));
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  it("sends known-answer prompts to idle nodes now and then; a wrong answer is an invalid response", async () => {
    const honest = startScriptedNode({ baseUrl: coordinator.url, accountKey, nodeId: "canary-honest", script: model });
    const cheat = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId: "canary-cheat",
      script: model,
      dishonest: true,
    });
    try {
      await Promise.all([honest.registered, cheat.registered]);
      await expect
        .poll(() => Math.min(honest.assigns.length, cheat.assigns.length), { timeout: 20_000, interval: 100 })
        .toBeGreaterThan(0);
      await coordinator.journal.flush();
      await coordinator.reputation.settled();
      const events = await coordinator.db
        .selectFrom("reputation_events")
        .select(["node_id", "rule", "delta", "evidence"])
        .execute();
      expect(events.filter((e) => e.node_id === "canary-honest")).toEqual([]);
      const caught = events.filter((e) => e.node_id === "canary-cheat");
      expect(caught.length).toBeGreaterThan(0);
      expect(caught[0]).toMatchObject({
        rule: "invalid_response",
        delta: -50,
        evidence: { check: "canary", referenceFrom: "known answer" },
      });
      const tasks = await coordinator.db.selectFrom("tasks").select(["classifier", "parent_id"]).execute();
      expect(tasks.length).toBeGreaterThan(0);
      for (const task of tasks) expect(task).toEqual({ classifier: "canary", parent_id: null });
    } finally {
      honest.kill();
      cheat.kill();
    }
  });
});
