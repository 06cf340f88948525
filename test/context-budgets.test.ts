// Context mode against nodes that refuse exactly what a real node refuses: the generated tiny model's tokenizer (one
// token a character), a 512-token window, llama.cpp's rule (a prompt of window tokens or more is CONTEXT_TOO_LONG),
// and notes as long as max_tokens allows (the tiny model never stops by itself). Documents of 1×, 5×, 20× and 100×
// the window complete; a failure inside the map/reduce is never blamed on the caller.
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { DivisionMode, Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import type { TaskAssign, TaskPayload } from "../gen/iris/v1/node_pb.ts";
import { connectFailure } from "./support/errors.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { logDocument, QUESTION, tinyPromptTokens } from "./support/documents.ts";
import { startScriptedNode, TaskErrorReason, type Script, type ScriptedNode } from "./support/scripted-node.ts";

const WINDOW = 512;

describe("context mode within a 512-token window", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;
  let nodes: ScriptedNode[] = [];
  /** The largest prompt + max_tokens any strict node was given. */
  let largestNeed = 0;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      HEARTBEAT_INTERVAL_MS: "200",
      QUEUE_MAX_WAIT_MS: "3000",
      TASK_MAX_ATTEMPTS: "3",
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

  /** A node with the tiny model's window and tokenizer, refusing as llama.cpp does, answering max_tokens characters. */
  function strict(assign: TaskAssign, payload: TaskPayload): Script {
    const prompt = tinyPromptTokens(payload);
    largestNeed = Math.max(largestNeed, prompt + assign.maxTokens);
    if (prompt >= WINDOW) return { tokens: [], failWith: TaskErrorReason.CONTEXT_TOO_LONG };
    const room = Math.min(assign.maxTokens, WINDOW - prompt);
    return { tokens: Array.from({ length: room }, (_, i) => "token was out "[i % 14]!), chunkTokens: 1 };
  }

  async function start(nodeId: string, options: { contextLength?: number; script?: typeof strict } = {}) {
    const node = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId,
      modelName: "tiny-test-1B-F32",
      parameterCount: 1e9, // BASIC: serves SIMPLE requests only
      contextLength: options.contextLength ?? WINDOW,
      tokenizerRates: { asciiCharsPerToken: 1, otherCharsPerToken: 1 },
      maxConcurrentTasks: 2,
      script: options.script ?? strict,
    });
    nodes.push(node);
    await node.registered;
  }

  async function ask(content: string, divisionMode = DivisionMode.CONTEXT) {
    const events: ChatResponse["event"][] = [];
    for await (const response of inference.chat({
      params: { messages: [{ role: Role.USER, content }], divisionMode, maxTokens: 16 },
    }))
      events.push(response.event);
    const accepted = events.find((e) => e.case === "accepted")!.value as Extract<
      ChatResponse["event"],
      { case: "accepted" }
    >["value"];
    const last = events.at(-1)!;
    if (last.case !== "done") throw new Error(`the stream ended with ${last.case}`);
    return {
      accepted,
      done: last.value,
      text: events.flatMap((e) => (e.case === "token" ? [e.value.text] : [])).join(""),
    };
  }

  it.each([1, 5, 20, 100])(
    "a document of %i× the window completes: every prompt and its note fit, every round shrinks",
    async (windows) => {
      await Promise.all(["t-1", "t-2", "t-3"].map((id) => start(`${id}-${windows}`)));
      largestNeed = 0;
      const document = logDocument(windows * WINDOW);
      const started = Date.now();
      const { accepted, done, text } = await ask(`${QUESTION}\n\n${document}`);
      const elapsed = Date.now() - started;
      expect(accepted.divisionMode).toBe(DivisionMode.CONTEXT);
      expect(text.length).toBe(16); // the reduce's answer, max_tokens characters
      expect(done.usage?.completionTokens).toBe(16);
      // no node was ever given more than its window holds, answer included
      expect(largestNeed).toBeLessThanOrEqual(WINDOW);
      await coordinator.journal.flush();
      const parent = await coordinator.db
        .selectFrom("tasks")
        .selectAll()
        .where("id", "=", accepted.taskId)
        .executeTakeFirstOrThrow();
      const children = await coordinator.db
        .selectFrom("tasks")
        .selectAll()
        .where("parent_id", "=", accepted.taskId)
        .execute();
      // from 2,000 characters on the request is COMPLEX as a whole (a long prompt), its parts SIMPLE (the question
      // alone): BASIC nodes read it
      expect(parent).toMatchObject({
        status: "completed",
        difficulty: document.length >= 2_000 ? "COMPLEX" : "SIMPLE",
      });
      for (const child of children)
        expect(child).toMatchObject({ status: "completed", attempt: 1, difficulty: "SIMPLE" });
      const split = await coordinator.db
        .selectFrom("task_events")
        .select("detail")
        .where("task_id", "=", parent.id)
        .where("detail", "like", "document of about%")
        .executeTakeFirstOrThrow();
      const [, tokens, chunks, chunkTokens] = /document of about (\d+) tokens in (\d+) chunks of ≤ (\d+)/
        .exec(split.detail!)!
        .map(Number);
      expect(tokens).toBeGreaterThanOrEqual(document.length); // counted at the node's rates, with their margin
      expect(chunks).toBeGreaterThanOrEqual(Math.ceil(tokens! / chunkTokens!));
      // map parts, then combining rounds of at most half as many parts each, then the reduce
      const combines = children.length - chunks! - 1;
      expect(combines).toBeGreaterThanOrEqual(0);
      expect(combines).toBeLessThan(chunks!);
      console.log(
        `context ${windows}× ${WINDOW}: ${document.length} characters, ${chunks} chunks of ` +
          `≤ ${chunkTokens}, ${combines} combining parts, ${elapsed} ms`,
      );
    },
    120_000,
  );

  it("a part refused although the budget fits is Internal, naming the part: never the caller's " +
    "InvalidArgument", async () => {
    // a node that declares 4,096 tokens and refuses anything over 300: the coordinator sized chunks to its declaration
    const liar = (assign: TaskAssign, payload: TaskPayload): Script =>
      tinyPromptTokens(payload) > 300
        ? { tokens: [], failWith: TaskErrorReason.CONTEXT_TOO_LONG }
        : strict(assign, payload);
    await start("liar", { contextLength: 4096, script: liar });
    const err = await connectFailure(ask(`${QUESTION}\n\n${logDocument(20 * WINDOW)}`));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toMatch(/^chunk \d+ of \d+ could not be read: /);
  }, 60_000);

  it(
    "no node online serves the request's own difficulty: Unavailable at once, not after the queue's " + "wait",
    async () => {
      await start("basic-only");
      const err = await connectFailure(ask(`Summarise the logs below.\n\n${logDocument(5 * WINDOW)}`));
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(/no node that serves COMPLEX requests/);
      expect(err.rawMessage).not.toMatch(/waited/); // refused up front, not after the queue's wait
    },
  );
});
