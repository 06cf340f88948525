// Division modes, spot checks and node classification with real agents: `iris-agent` processes running llama.cpp
// on the generated tiny model (one a liar, test/support/dishonest-agent.ts), a real coordinator, the `iris` CLI.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { getLlama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { Difficulty, DivisionMode, Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import { answerHash } from "../coordinator/tasks/division/compare.ts";
import { TINY_GGUF_WORDS, writeTinyGguf } from "./fixtures/tiny-gguf.ts";
import { startAgent, startAgentNetwork, type AgentNetwork, type AgentProcess } from "./support/agent-process.ts";
import { runCli } from "./support/cli-process.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { startLmStudioStandin } from "./support/lmstudio-standin.ts";

type Event = ChatResponse["event"];

const CONTEXT_LENGTH = 2048;
const JWT_SECRET = "division-agents-secret-0123456789abcdef";
const ADMIN_EMAIL = "admin@iris.test";
const vocabulary = new Set(TINY_GGUF_WORDS);

/** Whether text is what an honest tiny model writes: only its vocabulary's words (a dishonest node's are ROT13). */
const honestWords = (text: string) =>
  text
    .trim()
    .split(/\s+/)
    .every((word) => vocabulary.has(word));

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

async function newModel(): Promise<string> {
  const path = join(mkdtempSync(join(tmpdir(), "iris-division-agents-")), "tiny.gguf");
  writeTinyGguf(path, { contextLength: CONTEXT_LENGTH });
  return path;
}

describe("division modes with real agents on the tiny model", () => {
  let network: AgentNetwork;
  let coordinator: TestCoordinator;
  let agents: Map<string, AgentProcess>;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;
  // at debug: the kill test finds its victim by the agent's "task assigned" line
  const agent = (nodeId: string, env: Record<string, string> = {}) =>
    network.agent(nodeId, { LOG_LEVEL: "debug", ...env });

  beforeAll(async () => {
    network = await startAgentNetwork({
      model: { contextLength: CONTEXT_LENGTH },
      coordinatorEnv: {
        TASK_MAX_ATTEMPTS: "3",
        // every single-mode answer is checked (divided ones never are)
        SPOT_CHECK_FRACTION: "1",
        CONTEXT_CHUNK_TOKENS: "1024",
        CONTEXT_NOTE_TOKENS: "48",
        CONTEXT_OVERLAP_TOKENS: "32",
        JWT_SECRET,
        ADMIN_EMAILS: ADMIN_EMAIL,
      },
    });
    ({ coordinator, agents } = network);
    inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    await Promise.all(["honest-1", "honest-2", "honest-3"].map((id) => agent(id)));
  }, 120_000);
  afterAll(async () => {
    await network?.close();
  });

  async function chat(
    content: string,
    params: { divisionMode?: DivisionMode; maxTokens?: number; difficulty?: Difficulty },
    client = inference,
  ) {
    const events: Event[] = [];
    for await (const response of client.chat({ params: { messages: [{ role: Role.USER, content }], ...params } }))
      events.push(response.event);
    const accepted = events.find((e) => e.case === "accepted")!.value as Extract<Event, { case: "accepted" }>["value"];
    const last = events.at(-1)!;
    if (last.case !== "done") throw new Error(`the stream ended with ${last.case}`);
    const text = events.flatMap((e) => (e.case === "token" ? [e.value.text] : [])).join("");
    return { events, accepted, done: last.value, text };
  }

  async function rows(parentId: string) {
    await coordinator.journal.flush();
    const parent = await coordinator.db
      .selectFrom("tasks")
      .selectAll()
      .where("id", "=", parentId)
      .executeTakeFirstOrThrow();
    const children = await coordinator.db
      .selectFrom("tasks")
      .selectAll()
      .where("parent_id", "=", parentId)
      .orderBy("created_at")
      .execute();
    return { parent, children };
  }

  async function penalties(nodeId: string) {
    await coordinator.reputation.settled();
    return coordinator.db
      .selectFrom("reputation_events")
      .select(["rule", "delta", "task_id", "evidence"])
      .where("node_id", "=", nodeId)
      .where("rule", "=", "invalid_response")
      .orderBy("id")
      .execute();
  }

  // a numbered list of short questions: the local classifier calls it SIMPLE, which these BASIC-tier nodes serve
  const questions = ["What is the capital of France?", "What is the capital of Peru?", "What is the capital of Japan?"];
  const numbered = questions.map((q, i) => `${i + 1}. ${q}`).join("\n");

  /** The aggregator's stream: "1. <question>\n\n<answer>\n\n2. …", each answer the tiny model's words. */
  function expectOrderedParts(text: string): void {
    const headers = questions.map((q, i) => text.indexOf(`${i + 1}. ${q}\n\n`));
    expect(headers[0]).toBe(0);
    expect(headers[1]).toBeGreaterThan(headers[0]!);
    expect(headers[2]).toBeGreaterThan(headers[1]!);
    const answers = text.split(/(?:^|\n\n)\d\. What is the capital of [A-Za-z]+\?\n\n/).filter((a) => a !== "");
    expect(answers).toHaveLength(3);
    for (const answer of answers) expect(honestWords(answer)).toBe(true);
  }

  it("subtasks: the planner's answer is no plan, the rules split the list, three agents answer, one ordered " +
    "stream", async () => {
    const { accepted, done, text } = await chat(numbered, { divisionMode: DivisionMode.SUBTASKS, maxTokens: 24 });
    expect(accepted.divisionMode).toBe(DivisionMode.SUBTASKS);
    expectOrderedParts(text);
    const { parent, children } = await rows(accepted.taskId);
    expect(parent).toMatchObject({ status: "completed", division_mode: "subtasks" });
    expect(children).toHaveLength(4); // the planner and three parts
    for (const child of children) expect(child).toMatchObject({ status: "completed", parent_id: parent.id });
    const notes = await coordinator.db
      .selectFrom("task_events")
      .select("detail")
      .where("task_id", "=", parent.id)
      .execute();
    expect(notes.map((n) => n.detail)).toContain("plan (rules): 3 part(s)");
    const parts = children.slice(1); // after the planner's row
    expect(new Set(parts.map((c) => c.node_id)).size).toBe(3);
    expect([...done.nodeIds].sort()).toEqual(["honest-1", "honest-2", "honest-3"]);
  }, 60_000);

  it("subtasks: a part whose agent is killed mid-answer is retried on another agent; the stream stays " +
    "whole", async () => {
    await agent("honest-4");
    const LONG = 1500; // parts long enough to be killed in the middle of
    const answer = chat(numbered, { divisionMode: DivisionMode.SUBTASKS, maxTokens: LONG });
    let victim: string | undefined;
    await expect
      .poll(
        () =>
          (victim = [...agents].find(([, a]) =>
            a.logs.some((l) => l.msg === "task assigned" && l.maxTokens === LONG),
          )?.[0]),
        { timeout: 30_000, interval: 5 },
      )
      .toBeDefined();
    agents.get(victim!)!.kill();
    const { accepted, text } = await answer;
    expectOrderedParts(text);
    const { parent, children } = await rows(accepted.taskId);
    expect(parent.status).toBe("completed");
    const retried = children.find((c) => c.attempt === 2);
    expect(retried).toMatchObject({ status: "completed" });
    expect(retried!.node_id).not.toBe(victim);
    const history = await coordinator.db
      .selectFrom("task_events")
      .select(["status", "node_id"])
      .where("task_id", "=", retried!.id)
      .orderBy("id")
      .execute();
    expect(history.filter((h) => h.status === "assigned").map((h) => h.node_id)).toEqual([victim, retried!.node_id]);
    await agents.get(victim!)!.exited;
    agents.delete(victim!);
  }, 90_000);

  it("consensus from `iris chat --mode consensus`: the dishonest agent loses 50, the majority answer is returned, " +
    "verified", async () => {
    await network.agent("liar", {}, { dishonest: true });
    expect(agents.get("liar")!.logs.some((l) => String(l.msg).startsWith("dishonest test agent"))).toBe(true);
    const nodes = [...agents.keys()];
    expect(nodes).toHaveLength(4);
    const run = await runCli(
      ["chat", "--mode", "consensus", "--nodes", "4", "--max-tokens", "24", "What is the capital of France?"],
      {
        env: { IRIS_URL: coordinator.url },
        timeoutMs: 60_000,
      },
    );
    expect(run.code, run.stderr).toBe(0);
    const answer = run.stdout.slice(0, -1);
    expect(honestWords(answer)).toBe(true);
    // three honest copies are a majority of four: the answer may come before the fourth copy ends
    expect(run.stderr).toMatch(
      /^\[consensus, verified · [A-Z]+ · tier BASIC · node [\w-]+ → [\w-]+ → [\w-]+( → [\w-]+)? · /,
    );
    await expect.poll(async () => (await penalties("liar")).length, { timeout: 20_000 }).toBe(1);
    const [penalty] = await penalties("liar");
    expect(penalty).toMatchObject({ delta: -50 });
    // the evidence: the liar's answer is the altered majority answer
    expect(penalty!.evidence).toMatchObject({
      check: "consensus",
      referenceSha256: answerHash(answer),
      threshold: 0.9,
    });
    expect(penalty!.evidence).not.toMatchObject({ answerSha256: answerHash(answer) });
    for (const nodeId of nodes.filter((id) => id !== "liar")) expect(await penalties(nodeId)).toEqual([]);
  }, 90_000);

  it("a spot check catches the dishonest agent: its single answer is re-run on another agent, refereed by a third, " +
    "and penalised", async () => {
    // routing prefers the fastest idle node: the liar looks fastest, so the user's task goes to it. A declaration is
    // fixed at registration (the registry's idle lists are sorted by it): changed here in place, it takes effect with
    // the node's next change that routing hears, a pause and resume
    const liar = coordinator.registry.get("liar")!;
    liar.capabilities.tokensPerSecond = 1e6;
    liar.paused = true;
    liar.paused = false;
    const { accepted, text } = await chat("What is the capital of Spain?", { maxTokens: 24 });
    expect(accepted.nodeId).toBe("liar");
    expect(honestWords(text)).toBe(false); // the user got the altered answer: the check runs afterwards
    await expect.poll(async () => (await penalties("liar")).length, { timeout: 20_000 }).toBe(2);
    const spotCheck = (await penalties("liar"))[1]!;
    expect(spotCheck).toMatchObject({ delta: -50, task_id: accepted.taskId });
    expect(spotCheck.evidence).toMatchObject({ check: "spot_check", answerSha256: answerHash(text) });
    const { children } = await rows(accepted.taskId);
    // the check disagreed with the liar; a third honest agent refereed (checkers.ts): two children
    expect(children).toHaveLength(2);
    for (const child of children) expect(child).toMatchObject({ classifier: "spot_check", status: "completed" });
    expect(children.map((c) => c.node_id)).not.toContain("liar");
    await network.stop("liar");
  }, 60_000);

  it("context: a document four times the agents' context is split with their tokenizer, mapped in parallel, " +
    "reduced", async () => {
    const accounts = createClient(AccountService, createGrpcTransport({ baseUrl: coordinator.url }));
    const token = (await accounts.register({ email: ADMIN_EMAIL, password: "a long admin password" })).token!
      .accessToken;
    const admin = createClient(
      InferenceService,
      createGrpcTransport({ baseUrl: coordinator.url, interceptors: [bearer(token)] }),
    );
    // the tiny model's tokenizer spends about one token per character on this text, the estimate one per 3.5
    const paragraph = (i: number) => `Log ${i}: the node said the model is hot and the token was out.`;
    const document = Array.from({ length: 160 }, (_, i) => paragraph(i)).join("\n\n");
    const llama = await getLlama({ gpu: false });
    const model = await llama.loadModel({ modelPath: network.modelPath });
    const documentTokens = model.tokenize(document).length;
    await model.dispose();
    expect(documentTokens).toBeGreaterThan(4 * CONTEXT_LENGTH);
    // an admin may set the difficulty: SIMPLE, which these BASIC nodes serve (the local model calls a long document
    // COMPLEX)
    const { accepted, done, text } = await chat(
      `Summarise the logs below.\n\n${document}`,
      { divisionMode: DivisionMode.CONTEXT, maxTokens: 32, difficulty: Difficulty.SIMPLE },
      admin,
    );
    expect(accepted.divisionMode).toBe(DivisionMode.CONTEXT);
    expect(honestWords(text)).toBe(true);
    const { parent, children } = await rows(accepted.taskId);
    expect(parent).toMatchObject({ status: "completed", division_mode: "context" });
    const split = await coordinator.db
      .selectFrom("task_events")
      .select("detail")
      .where("task_id", "=", parent.id)
      .where("detail", "like", "document of about%")
      .executeTakeFirstOrThrow();
    const [, estimated, chunks] = /document of about (\d+) tokens in (\d+) chunks of ≤ 1024/.exec(split.detail!)!;
    // counted with the agents' tokenizer (within its margin), not the estimate's third of it
    expect(Number(estimated)).toBeGreaterThanOrEqual(documentTokens);
    expect(Number(estimated)).toBeLessThan(documentTokens * 1.5);
    expect(Number(chunks)).toBeGreaterThanOrEqual(Math.ceil(documentTokens / 1024));
    // every chunk fitted a node (a chunk over the context would have failed with CONTEXT_TOO_LONG everywhere)
    expect(children.length).toBeGreaterThan(Number(chunks));
    for (const child of children)
      expect(child).toMatchObject({ status: "completed", division_mode: "context", attempt: 1 });
    expect(new Set(children.map((c) => c.node_id)).size).toBe(agents.size);
    expect(done.nodeIds).toHaveLength(1);
  }, 120_000);
});

describe("node classification over the real NodeService stream", () => {
  it("an agent answers a sealed classify probe with its backend and then decides; a tiny model's non-answer leaves " +
    "it to the rules", async () => {
    const coordinator = await startTestCoordinator({ HEARTBEAT_INTERVAL_MS: "500", CLASSIFIER_NODE_BUDGET_MS: "2000" });
    const lmstudio = await startLmStudioStandin({ tokens: ["Hello", "!"] });
    const started: AgentProcess[] = [];
    try {
      const accountKey = await newAccountKey(coordinator.url);
      const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
      const env = { COORDINATOR_URL: coordinator.url, IRIS_ACCOUNT_KEY: accountKey, BENCHMARK_TOKENS: "8" };
      const judge = startAgent({ ...env, NODE_ID: "judge", IRIS_BACKEND: "lmstudio", BACKEND_URL: lmstudio.baseUrl });
      started.push(judge);
      await judge.waitForLog((line) => line.msg === "registered with the coordinator", 60_000);
      // from now on the model behind the agent judges every prompt COMPLEX (and answers tasks with the same words)
      lmstudio.behaviour.tokens = ['{"difficulty":', '"COMPLEX"}'];
      const chat = (content: string) =>
        collect(inference.chat({ params: { messages: [{ role: Role.USER, content }], maxTokens: 8 } }));
      const question = "What is the capital of Peru?"; // the local model calls it SIMPLE
      // no node has answered a classify yet: the local model decides at once, and the agent gets the prompt as a probe
      const first = await chat(question);
      expect(first.accepted).toMatchObject({ classifier: "local", difficulty: Difficulty.SIMPLE });
      // the agent opened the sealed prompt and asked its backend with the classification prompt
      const classifyRequest = () =>
        lmstudio.requests.find(
          (r) => r.path.endsWith("/chat/completions") && JSON.stringify(r.body.messages).includes("difficulty"),
        );
      await vi.waitFor(() => expect(classifyRequest()).toBeDefined(), { timeout: 10_000 });
      expect(classifyRequest()?.body.messages.at(-1).content).toContain(question);
      // its answer gives it a record: from then on a chat waits on it (for what its answers took) and its COMPLEX
      // decides
      let judged: Awaited<ReturnType<typeof chat>> | undefined;
      for (const country of ["Chile", "Ghana", "Laos", "Fiji", "Mali"]) {
        judged = await chat(`What is the capital of ${country}?`);
        if (judged.accepted?.classifier === "node") break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(judged?.accepted).toMatchObject({ classifier: "node", difficulty: Difficulty.COMPLEX });
      expect(coordinator.classifier.stats().links.node).toMatchObject({ answered: 1, failed: 0, timedOut: 0 });

      judge.kill();
      await judge.exited;
      const tiny = startAgent({ ...env, NODE_ID: "tiny", IRIS_MODEL: await newModel() });
      started.push(tiny);
      await tiny.waitForLog((line) => line.msg === "registered with the coordinator", 60_000);
      const second = await chat("What is the capital of Togo?");
      // a new node is only probed: the local model decides at once (the tiny model would have answered no difficulty
      // anyway:
      // the agent says so, DIFFICULTY_UNSPECIFIED, and the node rests instead of being waited on)
      expect(second.accepted).toMatchObject({ classifier: "local", difficulty: Difficulty.SIMPLE, nodeId: "tiny" });
      await tiny.waitForLog((line) => line.msg === "could not classify; the coordinator falls through", 30_000);
      expect(coordinator.classifier.stats().links.node).toMatchObject({ answered: 1, failed: 0, timedOut: 0 });
    } finally {
      for (const agent of started) agent.kill();
      await lmstudio.close();
      await coordinator.close();
    }
  }, 120_000);
});

async function collect(stream: AsyncIterable<ChatResponse>) {
  const events: Event[] = [];
  for await (const response of stream) events.push(response.event);
  const accepted = events.find((e) => e.case === "accepted")?.value as
    | Extract<Event, { case: "accepted" }>["value"]
    | undefined;
  return { events, accepted };
}
