// Divided requests against the nodes actually online (scripted nodes over real sockets): parts judged on their own on
// a BASIC-only network, auto's choice, a client that leaves while parts wait, an admin's difficulty hint over the
// HTTP routes, and `iris tasks` showing each row's mode and parent.
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { DivisionMode, Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import { runCli } from "./support/cli-process.ts";
import { connectFailure } from "./support/errors.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import {
  startScriptedNode,
  type Script,
  type ScriptedNode,
  type ScriptedNodeOptions,
} from "./support/scripted-node.ts";

type Event = ChatResponse["event"];
const ADMIN_EMAIL = "admin@iris.test";
/** ADVANCED as a whole (a spelled-out list), three SIMPLE definitions. */
const DEFINITIONS = "1. Define TCP.\n2. Define UDP.\n3. Define IP.";
const lastUser = (messages: { role: number; content: string }[]) =>
  messages.findLast((m) => m.role === Role.USER)?.content ?? "";

describe("divided requests and the nodes online", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;
  let nodes: ScriptedNode[] = [];

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      HEARTBEAT_INTERVAL_MS: "200",
      QUEUE_MAX_WAIT_MS: "3000",
      JWT_SECRET: "division-online-secret-0123456789abcdef",
      ADMIN_EMAILS: ADMIN_EMAIL,
    });
    const transport = createGrpcTransport({ baseUrl: coordinator.url });
    accountKey = (await createClient(AccountService, transport).generateKey({})).accountKey;
    inference = createClient(InferenceService, transport);
  });
  afterEach(async () => {
    for (const node of nodes) node.kill();
    await Promise.all(nodes.map((node) => node.ended));
    nodes = [];
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  /** A BASIC node (1B parameters) unless options say otherwise; it answers "Answer to <request>". */
  async function node(nodeId: string, options: Partial<ScriptedNodeOptions> = {}) {
    const script = (): Script => ({ tokens: ["ok"] });
    const started = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId,
      parameterCount: 1e9,
      script,
      ...options,
    });
    nodes.push(started);
    await started.registered;
    return started;
  }

  async function chat(
    content: string,
    divisionMode: DivisionMode,
    signal?: AbortSignal,
    onEvent?: (event: Event) => void,
  ) {
    const events: Event[] = [];
    for await (const response of inference.chat(
      { params: { messages: [{ role: Role.USER, content }], divisionMode, maxTokens: 8 } },
      { signal },
    )) {
      events.push(response.event);
      onEvent?.(response.event);
    }
    const accepted = events.find((e) => e.case === "accepted")!.value as Extract<Event, { case: "accepted" }>["value"];
    return { accepted, text: events.flatMap((e) => (e.case === "token" ? [e.value.text] : [])).join("") };
  }

  async function children(parentId: string) {
    await coordinator.journal.flush();
    return coordinator.db
      .selectFrom("tasks")
      .selectAll()
      .where("parent_id", "=", parentId)
      .orderBy("created_at")
      .execute();
  }

  it(
    "auto splits a request whose tier is not online when its parts' tier is, and says at once when neither " + "is",
    async () => {
      await node("basic-1", { script: (_, payload) => ({ tokens: [`Answer to ${lastUser(payload.messages)}`] }) });
      await node("basic-2", { script: (_, payload) => ({ tokens: [`Answer to ${lastUser(payload.messages)}`] }) });
      const { accepted, text } = await chat(DEFINITIONS, DivisionMode.AUTO);
      expect(accepted).toMatchObject({ divisionMode: DivisionMode.SUBTASKS });
      expect(text).toBe(
        "1. Define TCP.\n\nAnswer to Define TCP.\n\n2. Define UDP.\n\nAnswer to Define UDP.\n\n3. Define " +
          "IP.\n\nAnswer to Define IP.",
      );
      // no node online plans ADVANCED requests: no planner row, three SIMPLE parts
      const rows = await children(accepted.taskId);
      expect(rows.map((r) => r.difficulty)).toEqual(["SIMPLE", "SIMPLE", "SIMPLE"]);
      // a COMPLEX comparison has no parts: no mode can serve it, and the caller hears so now, not after the queue's
      // wait
      const err = await connectFailure(chat("Compare TCP and UDP.", DivisionMode.AUTO));
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(/no node that serves COMPLEX requests/);
      expect(err.rawMessage).not.toMatch(/waited/);
    },
  );

  it("a part that no online node serves fails the request at once, naming the part", async () => {
    await node("basic-3");
    const err = await connectFailure(
      chat("1. Define TCP.\n2. Compare TCP and UDP for video calls.\n3. Define IP.", DivisionMode.SUBTASKS),
    );
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/^part 2 of 3 could not be completed: no node that serves COMPLEX requests/);
    expect(err.rawMessage).not.toMatch(/waited/);
  });

  it(
    "a client that leaves while parts wait: every part's row is closed at once and no node is asked " + "again",
    async () => {
      // one slot: the first part runs (slowly), the other two wait in the request's group
      const slow = await node("slow", {
        maxConcurrentTasks: 1,
        script: () => ({ tokens: Array.from({ length: 50 }, () => "word "), delayMs: 100 }),
      });
      const abort = new AbortController();
      const err = await connectFailure(
        chat(DEFINITIONS, DivisionMode.SUBTASKS, abort.signal, (event) => event.case === "token" && abort.abort()),
      );
      expect(err.code).toBe(Code.Canceled);
      const parentId = slow.assigns[0]!.taskId;
      await coordinator.journal.flush();
      const row = await coordinator.db
        .selectFrom("tasks")
        .select("parent_id")
        .where("id", "=", parentId)
        .executeTakeFirstOrThrow();
      await expect
        .poll(async () => (await children(row.parent_id!)).map((r) => r.status), { timeout: 1_000, interval: 50 })
        .toEqual(["cancelled", "cancelled", "cancelled"]);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(slow.assigns).toHaveLength(1);
      expect(slow.cancels.map((c) => c.taskId)).toEqual([parentId]);
    },
  );

  it(
    "an admin's difficulty hint is honoured on /api/chat/stream and /v1 as over gRPC; anyone else's only " + "raises",
    async () => {
      await node("basic-4");
      await node("mid-1", { parameterCount: 8e9 });
      const accounts = createClient(AccountService, createGrpcTransport({ baseUrl: coordinator.url }));
      const token = (await accounts.register({ email: ADMIN_EMAIL, password: "a long admin password" })).token!
        .accessToken;
      const messages = [{ role: "user", content: "Compare TCP and UDP." }]; // COMPLEX by the local model
      const post = (path: string, body: object, admin: boolean) =>
        fetch(`${coordinator.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(admin ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify({ ...body, messages, difficulty: "simple", max_tokens: 4 }),
        });
      for (const [admin, difficulty] of [
        [true, "simple"],
        [false, "complex"],
      ] as const) {
        const sse = await (await post("/api/chat/stream", {}, admin)).text();
        expect(JSON.parse(/event: accepted\ndata: (.*)\n/.exec(sse)![1]!)).toMatchObject({ difficulty });
        const completion = await post("/v1/chat/completions", { model: "auto" }, admin);
        expect(completion.status).toBe(200);
        expect(completion.headers.get("x-iris-difficulty")).toBe(difficulty);
        await completion.text();
      }
    },
  );

  it("`iris tasks` shows each row's division mode and its parent", async () => {
    await node("basic-5");
    const { accepted } = await chat("1. Define TCP. 2. Define UDP.", DivisionMode.SUBTASKS);
    await coordinator.journal.flush();
    const run = await runCli(["tasks", "--limit", "5"], { env: { IRIS_URL: coordinator.url }, timeoutMs: 30_000 });
    expect(run.code, run.stderr).toBe(0);
    const [header, ...lines] = run.stdout.trim().split("\n");
    expect(header).toMatch(/^TASK +STATUS +DIFFICULTY +TIER +NODE +MODE +PARENT +/);
    const parent = accepted.taskId.slice(0, 8);
    expect(
      lines.filter((line) => line.includes(` subtasks `) && line.includes(` ${parent} `)).length,
    ).toBeGreaterThanOrEqual(2);
    expect(lines.some((line) => line.startsWith(parent) && / subtasks +- /.test(line))).toBe(true);
  });
});
