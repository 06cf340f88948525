// The inference path over real sockets with scripted nodes: registration, routing by tier, streaming,
// failover before and during the answer, cancel, deadline, queue and its limits, and the task records.
import { generateKeyPairSync } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { Tier } from "../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import { ConnectRequestSchema, NodeService, TaskAssignSchema, type ConnectRequest } from "../gen/iris/v1/node_pb.ts";
import { Channel } from "../common/channel.ts";
import { publicKeyBytes } from "../common/crypto/envelope.ts";
import { registerProof } from "../common/crypto/register-proof.ts";
import {
  startScriptedNode,
  TaskErrorReason,
  type ScriptedNodeOptions,
  ScriptedNodes,
} from "./support/scripted-node.ts";
import { connectFailure } from "./support/errors.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";

const advancedPrompt = "Write a Python function that parses ISO dates, and prove it handles leap years.";
const simplePrompt = "Translate 'good morning' to French.";

describe("inference path", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  const nodes = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey }));
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      HEARTBEAT_INTERVAL_MS: "200",
      QUEUE_MAX_WAIT_MS: "1500",
      TASK_TIMEOUT_SIMPLE_MS: "1500",
    });
    const transport = createGrpcTransport({ baseUrl: coordinator.url });
    accountKey = (await createClient(AccountService, transport).generateKey({})).accountKey;
    inference = createClient(InferenceService, transport);
  });
  afterAll(async () => {
    nodes.killAll();
    await coordinator?.close();
  });

  const node = (options: Partial<ScriptedNodeOptions> & { nodeId: string }) => nodes.start(options);

  async function chat(
    prompt: string,
    signal?: AbortSignal,
    options: { maxTokens?: number; divisionMode?: number; consensusNodes?: number } = {},
  ) {
    const events: ChatResponse["event"][] = [];
    for await (const response of inference.chat(
      { params: { messages: [{ role: 2, content: prompt }], ...options } },
      { signal },
    )) {
      events.push(response.event);
    }
    return events;
  }

  const text = (events: ChatResponse["event"][]) =>
    events.flatMap((e) => (e.case === "token" ? [e.value.text] : [])).join("");

  async function reputationEvents(nodeId: string) {
    await coordinator.reputation.settled();
    return coordinator.db
      .selectFrom("reputation_events")
      .select(["rule", "delta", "task_id"])
      .where("node_id", "=", nodeId)
      .orderBy("id")
      .execute();
  }

  async function taskRow(taskId: string) {
    await coordinator.journal.flush();
    return coordinator.db.selectFrom("tasks").selectAll().where("id", "=", taskId).executeTakeFirstOrThrow();
  }

  it("generates account keys that verify, and refuses malformed ones", async () => {
    const accounts = createClient(AccountService, createGrpcTransport({ baseUrl: coordinator.url }));
    expect(accountKey).toMatch(/^\d{4} \d{4} \d{4} \d{4}$/);
    expect((await accounts.verifyKey({ accountKey: accountKey.replaceAll(" ", "") })).valid).toBe(true);
    expect((await accounts.verifyKey({ accountKey: "0000 0000 0000 0000" })).valid).toBe(false);
    expect((await connectFailure(accounts.verifyKey({ accountKey: "1234-5678" }))).code).toBe(Code.InvalidArgument);
    const stored = await coordinator.db.selectFrom("accounts").select("key_hash").execute();
    expect(stored.some((row) => row.key_hash.includes(accountKey.replaceAll(" ", "")))).toBe(false);
  });

  it("refuses a chat whose division fields are out of range, naming the field", async () => {
    for (const [params, field] of [
      [{ divisionMode: 42 }, "division_mode"],
      [{ divisionMode: 3, consensusNodes: 1 }, "consensus_nodes"],
      [{ divisionMode: 3, consensusNodes: 10 }, "consensus_nodes"],
    ] as const) {
      const err = await connectFailure(chat("hi", undefined, params));
      expect(err.code, field).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain(field);
    }
  });

  it("refuses a node with an unknown account key", async () => {
    const refused = await nodes.start({ accountKey: "9999 9999 9999 9999", nodeId: "intruder" }, false);
    expect((await connectFailure(refused.registered)).code).toBe(Code.Unauthenticated);
  });

  it("streams an answer from a node, then records the task", async () => {
    const mid = await node({ nodeId: "mid-1", tokensPerSecond: 20, parameterCount: 8e9 });
    const events = await chat(simplePrompt);
    expect(events[0]?.case).toBe("accepted");
    const accepted = events[0]!.case === "accepted" ? events[0]!.value : undefined;
    expect(accepted).toMatchObject({ nodeId: "mid-1", tier: Tier.MID, classifier: "local" });
    expect(text(events)).toBe("Hello, world!");
    const done = events.at(-1);
    expect(done?.case).toBe("done");
    if (done?.case === "done") expect(done.value.usage).toMatchObject({ promptTokens: 7, completionTokens: 4 });
    expect(mid.assigns).toHaveLength(1);
    const row = await taskRow(accepted!.taskId);
    expect(row).toMatchObject({
      status: "completed",
      node_id: "mid-1",
      tier: "MID",
      difficulty: "SIMPLE",
      prompt_tokens: 7,
      completion_tokens: 4,
    });
    expect(row.ttft_ms).not.toBeNull();
    const history = await coordinator.db
      .selectFrom("task_events")
      .select("status")
      .where("task_id", "=", accepted!.taskId)
      .orderBy("id")
      .execute();
    expect(history.map((h) => h.status)).toEqual(["queued", "assigned", "streaming", "completed"]);
    expect(await reputationEvents("mid-1")).toEqual([{ rule: "task_completed", delta: 10, task_id: accepted!.taskId }]);
    expect(coordinator.registry.get("mid-1")?.reputation).toBe(110);
    mid.kill();
  });

  it("never gives ADVANCED work to a BASIC node; with no PRO node online it ends Unavailable at once", async () => {
    const basic = await node({ nodeId: "basic-1", parameterCount: 3e9, tokensPerSecond: 50 });
    const err = await connectFailure(chat(advancedPrompt));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toContain("ADVANCED");
    // the at-once refusal names who is online; the queue's would say how long it waited
    expect(err.rawMessage).toMatch(/online now: 1 BASIC node/);
    expect(err.rawMessage).not.toMatch(/waited/);
    expect(basic.assigns).toHaveLength(0);
    const pro = await node({ nodeId: "pro-1", parameterCount: 70e9, tokensPerSecond: 25 });
    const events = await chat(advancedPrompt);
    expect(events[0]?.case === "accepted" && events[0].value.nodeId).toBe("pro-1");
    expect(basic.assigns).toHaveLength(0);
    basic.kill();
    pro.kill();
  });

  it("re-routes transparently when a node fails before its first chunk", async () => {
    const failing = await node({
      nodeId: "fails-first",
      tokensPerSecond: 29,
      script: () => ({ tokens: [], failWith: TaskErrorReason.BACKEND_FAILED }),
    });
    const healthy = await node({ nodeId: "healthy", tokensPerSecond: 11, script: () => ({ tokens: ["ok"] }) });
    const events = await chat(simplePrompt);
    expect(events.filter((e) => e.case === "accepted")).toHaveLength(1);
    expect(text(events)).toBe("ok");
    const done = events.at(-1);
    expect(done?.case === "done" && done.value.nodeIds).toEqual(["fails-first", "healthy"]);
    expect(failing.assigns).toHaveLength(1);
    failing.kill();
    healthy.kill();
  });

  it("records a node's failure whose message holds a NUL (PostgreSQL refuses U+0000) with the task", async () => {
    const failing = await node({
      nodeId: "fails-nul",
      tokensPerSecond: 29,
      script: () => ({ tokens: [], failWith: TaskErrorReason.BACKEND_FAILED, failMessage: "bad\u0000bytes" }),
    });
    const healthy = await node({ nodeId: "healthy-2", tokensPerSecond: 11, script: () => ({ tokens: ["ok"] }) });
    const events = await chat(simplePrompt);
    const accepted = events.find((e) => e.case === "accepted")?.value;
    expect(text(events)).toBe("ok");
    expect(await taskRow(accepted!.taskId)).toMatchObject({ status: "completed", node_id: "healthy-2" });
    const history = await coordinator.db
      .selectFrom("task_events")
      .select(["status", "detail"])
      .where("task_id", "=", accepted!.taskId)
      .orderBy("id")
      .execute();
    expect(history.map((h) => h.status)).toContain("completed");
    expect(history.map((h) => h.detail).join(" ")).toContain("bad\ufffdbytes");
    failing.kill();
    healthy.kill();
  });

  it("continues an answer on another node when the first dies mid-stream, with the text so far as prefix", async () => {
    const dying = await node({
      nodeId: "dies",
      tokensPerSecond: 29,
      script: () => ({ tokens: ["One", " two", " three", " four"], dieAfter: 2, delayMs: 5 }),
    });
    const rescuer = await node({
      nodeId: "rescuer",
      tokensPerSecond: 11,
      script: () => ({ tokens: [" three", " four"] }),
    });
    const events = await chat(simplePrompt);
    expect(text(events)).toBe("One two three four");
    expect(rescuer.assigns).toHaveLength(1);
    expect(rescuer.assigns[0]!.payload.case).toBe("sealed");
    expect(rescuer.payloads[0]!.assistantPrefix).toBe("One two");
    const done = events.at(-1);
    expect(done?.case === "done" && done.value.usage?.completionTokens).toBe(4);
    dying.kill();
    rescuer.kill();
  });

  it("sends a cancel to the node when the client goes away, and records the task cancelled", async () => {
    const slow = await node({ nodeId: "slow", script: () => ({ tokens: Array(200).fill("x"), delayMs: 20 }) });
    const controller = new AbortController();
    let taskId = "";
    const err = await connectFailure(
      (async () => {
        for await (const response of inference.chat(
          { params: { messages: [{ role: 2, content: simplePrompt }] } },
          { signal: controller.signal },
        )) {
          if (response.event.case === "accepted") taskId = response.event.value.taskId;
          if (response.event.case === "token") controller.abort();
        }
      })(),
    );
    expect(err.code).toBe(Code.Canceled);
    await expect.poll(() => slow.cancels.map((c) => c.reason)).toEqual(["client_cancelled"]);
    await expect.poll(async () => (await taskRow(taskId)).status).toBe("cancelled");
    slow.kill();
  });

  it("ends a task that passes its deadline with DeadlineExceeded and cancels it on the node", async () => {
    const stuck = await node({ nodeId: "stuck", script: () => ({ tokens: [], hang: true }) });
    // 10 tokens at 20 tok/s keep the SIMPLE timeout (1.5 s here) as the deadline
    const err = await connectFailure(chat(simplePrompt, undefined, { maxTokens: 10 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(stuck.cancels.map((c) => c.reason)).toEqual(["deadline"]);
    expect((await reputationEvents("stuck")).map((e) => [e.rule, e.delta])).toEqual([["timeout", -20]]);
    stuck.kill();
  });

  it(
    "queues a request while the only node is busy, tells its position, and serves it when the node " + "frees",
    async () => {
      const single = await node({
        nodeId: "single",
        maxConcurrentTasks: 1,
        script: () => ({ tokens: ["a", "b", "c"], delayMs: 100 }),
      });
      const [first, second] = await Promise.all([chat(simplePrompt), chat(simplePrompt)]);
      const queued = [first, second].find((events) => events[0]?.case === "queued")!;
      expect(queued[0]).toMatchObject({ case: "queued", value: { position: 1 } });
      expect(text(first)).toBe("abc");
      expect(text(second)).toBe("abc");
      single.kill();
    },
  );

  it("ends ResourceExhausted when capable nodes stay busy past the queue's wait", async () => {
    const busy = await node({
      nodeId: "busy",
      maxConcurrentTasks: 1,
      script: () => ({ tokens: Array(50).fill("z"), delayMs: 60 }),
    });
    const long = chat(simplePrompt).catch(() => []);
    await expect.poll(() => busy.assigns.length).toBe(1);
    const err = await connectFailure(chat(simplePrompt));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toContain("busy");
    busy.kill();
    await long;
  });

  it("takes a node offline after missed heartbeats and re-routes its task", async () => {
    const silent = await node({
      nodeId: "silent",
      heartbeats: false,
      tokensPerSecond: 29,
      script: () => ({ tokens: [], hang: true }),
    });
    const backup = await node({ nodeId: "backup", tokensPerSecond: 11, script: () => ({ tokens: ["saved"] }) });
    const events = await chat(simplePrompt);
    expect(text(events)).toBe("saved");
    expect(silent.assigns).toHaveLength(1);
    expect(await silent.ended).toBeInstanceOf(Error);
    await coordinator.journal.flush();
    await expect
      .poll(
        async () =>
          (
            await coordinator.db
              .selectFrom("nodes")
              .select("status")
              .where("id", "=", "silent")
              .executeTakeFirstOrThrow()
          ).status,
      )
      .toBe("offline");
    backup.kill();
  });

  it("replaces a node's old connection when the same node id connects again", async () => {
    const first = await node({ nodeId: "twice" });
    const second = await node({ nodeId: "twice" });
    const ended = ConnectError.from(await first.ended);
    expect(ended.code).toBe(Code.Aborted);
    expect(coordinator.registry.get("twice")).toBeDefined();
    const models = await inference.listModels({});
    expect(models.models.map((m) => m.name)).toContain("scripted-8B-Q4_K_M");
    second.kill();
  });

  it("answers the unary variant with the whole text", async () => {
    const unary = await node({ nodeId: "unary", script: () => ({ tokens: ["all", " at", " once"] }) });
    const response = await inference.chatUnary({ params: { messages: [{ role: 2, content: simplePrompt }] } });
    expect(response.text).toBe("all at once");
    expect(response.accepted?.nodeId).toBe("unary");
    expect(response.done?.usage?.completionTokens).toBe(3);
    unary.kill();
  });

  it("asks the node for the whole answer in its result for a unary call, for chunks for a stream", async () => {
    const whole = await node({ nodeId: "whole", script: () => ({ tokens: ["in", " one", " result"], whole: true }) });
    const response = await inference.chatUnary({ params: { messages: [{ role: 2, content: simplePrompt }] } });
    expect(whole.assigns.at(-1)?.enableStreaming).toBe(false);
    expect(response.text).toBe("in one result");
    expect(response.done?.usage?.completionTokens).toBe(3);
    const tokens: string[] = [];
    for await (const event of inference.chat({ params: { messages: [{ role: 2, content: simplePrompt }] } }))
      if (event.event.case === "token") tokens.push(event.event.value.text);
    expect(whole.assigns.at(-1)?.enableStreaming).toBe(true);
    expect(tokens).toEqual(["in", " one", " result"]);
    whole.kill();
  });
});

describe("encrypted task payloads on the wire", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;
  // a plain question: the local classifier calls it SIMPLE, so the MID nodes here serve it
  const secret = "What is the capital of Peru? (secret prompt 7f3a9c)";
  let lies = 0;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ TASK_MAX_ATTEMPTS: "2", QUEUE_MAX_WAIT_MS: "300" });
    const transport = createGrpcTransport({ baseUrl: coordinator.url });
    accountKey = (await createClient(AccountService, transport).generateKey({})).accountKey;
    inference = createClient(InferenceService, transport);
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  async function answer(): Promise<string> {
    let text = "";
    for await (const response of inference.chat({ params: { messages: [{ role: 2, content: secret }] } })) {
      if (response.event.case === "token") text += response.event.value.text;
    }
    return text;
  }

  it("sends the prompt sealed: the assign carries no plaintext, and the node's key opens it", async () => {
    const honest = startScriptedNode({ baseUrl: coordinator.url, accountKey, nodeId: "sealed-1" });
    await honest.registered;
    expect(await answer()).toBe("Hello, world!");
    const assign = honest.assigns[0]!;
    expect(assign.payload.case).toBe("sealed");
    const wire = Buffer.from(toBinary(TaskAssignSchema, assign));
    expect(wire.includes(Buffer.from("secret prompt"))).toBe(false);
    expect(honest.payloads[0]!.messages[0]!.content).toBe(secret);
    honest.kill();
  });

  it("refuses a node that offers no public key", async () => {
    const err = await connectFailure(registerWithoutKey(coordinator.url, accountKey));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("public_key");
  });

  it(
    "still validates a node's other messages: an out-of-range heartbeat ends its stream with " + "InvalidArgument",
    async () => {
      const nodes = createClient(NodeService, createGrpcTransport({ baseUrl: coordinator.url }));
      const key = generateKeyPairSync("x25519");
      const requests = new Channel<ConnectRequest>();
      requests.push(
        create(ConnectRequestSchema, {
          message: {
            case: "register",
            value: {
              nodeId: "bad-beat",
              accountKey,
              modelName: "m",
              maxConcurrentTasks: 1,
              publicKey: publicKeyBytes(key.publicKey),
            },
          },
        }),
      );
      const err = await connectFailure(
        (async () => {
          for await (const response of nodes.connect(requests)) {
            const m = response.message;
            if (m.case === "registerChallenge") {
              const context = {
                nonce: m.value.nonce,
                nodeId: "bad-beat",
                nodePublicKey: publicKeyBytes(key.publicKey),
                coordinatorPublicKey: m.value.coordinatorPublicKey,
              };
              const proof = registerProof(key.privateKey, m.value.coordinatorPublicKey, context);
              requests.push(create(ConnectRequestSchema, { message: { case: "registerProof", value: { proof } } }));
            }
            if (m.case === "registerAck")
              requests.push(create(ConnectRequestSchema, { message: { case: "heartbeat", value: { load: 2 } } }));
          }
        })(),
      );
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain("heartbeat.load");
    },
  );

  for (const [name, script] of [
    ["a tampered chunk", { tokens: ["a", "b", "c"], tamperChunk: 1 }],
    ["a replayed chunk", { tokens: ["a", "b", "c"], replayChunk: 0 }],
    ["chunk text in clear (a downgrade)", { tokens: ["a", "b", "c"], plaintext: true }],
  ] as const) {
    it(`treats ${name} as an invalid response: the task moves to an honest node, nothing crashes`, async () => {
      const liar = startScriptedNode({
        baseUrl: coordinator.url,
        accountKey,
        nodeId: "liar",
        tokensPerSecond: 29,
        script: () => ({ ...script, tokens: [...script.tokens] }),
      });
      const honest = startScriptedNode({
        baseUrl: coordinator.url,
        accountKey,
        nodeId: "honest",
        tokensPerSecond: 11,
        script: () => ({ tokens: ["x", "y"] }),
      });
      await Promise.all([liar.registered, honest.registered]);
      const text = await answer();
      expect(liar.assigns).toHaveLength(1);
      expect(honest.assigns).toHaveLength(1);
      expect(text.endsWith("xy")).toBe(true);
      await coordinator.journal.flush();
      const notes = await coordinator.db
        .selectFrom("task_events")
        .select("detail")
        .where("node_id", "=", "liar")
        .execute();
      expect(notes.some((n) => n.detail?.startsWith("invalid response"))).toBe(true);
      await coordinator.reputation.settled();
      const penalties = await coordinator.db
        .selectFrom("reputation_events")
        .select(["rule", "delta"])
        .where("node_id", "=", "liar")
        .where("rule", "=", "invalid_response")
        .orderBy("id")
        .execute();
      // one −50 per lie, until the floor of 10 (the same node id lies in each of these cases)
      expect(penalties.length).toBe(++lies);
      expect(penalties[0]!.delta).toBe(-50);
      const { reputation } = await coordinator.db
        .selectFrom("nodes")
        .select("reputation")
        .where("id", "=", "liar")
        .executeTakeFirstOrThrow();
      expect(reputation).toBe(Math.max(10, 100 - 50 * lies));
      liar.kill();
      honest.kill();
      await Promise.all([liar.ended, honest.ended]);
    });
  }
});

/** Opens a node stream whose register has no public key; resolves when the stream ends. */
async function registerWithoutKey(baseUrl: string, accountKey: string): Promise<void> {
  const nodes = createClient(NodeService, createGrpcTransport({ baseUrl }));
  async function* requests() {
    yield create(ConnectRequestSchema, {
      message: { case: "register", value: { nodeId: "keyless", accountKey, modelName: "m", maxConcurrentTasks: 1 } },
    });
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
  for await (const _ of nodes.connect(requests())) {
    // the coordinator must refuse before any ack
  }
}
