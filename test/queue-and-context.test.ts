// What a request hears before a node takes it, over real sockets with scripted nodes: no capable node online is
// Unavailable at once (not after the queue's wait), a busy network queues with a position and an estimate that
// move, and a conversation goes only to a node whose context window holds it — else it is refused in words.
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { InferenceService, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { connectFailure } from "./support/errors.ts";
import { ScriptedNodes, TaskErrorReason } from "./support/scripted-node.ts";

const QUEUE_MAX_WAIT_MS = 10_000;
const advancedPrompt = "Write a Python function that parses ISO dates, and prove it handles leap years.";
const simplePrompt = "Translate 'good morning' to French.";
// about 4,000 tokens by the coordinator's estimate (3.5 characters a token): COMPLEX by its length
// a request about a long paste (COMPLEX, so the MID nodes here serve it); a bare paste with no ask could go either way
const longConversation =
  `Summarise this ` +
  `report:\n\n${"The quarterly report describes revenue, costs and the outlook for each region. ".repeat(180)}`;
const mid = { parameterCount: 8e9, tokensPerSecond: 20 };

describe("before a node takes the request", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  const nodes = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey }));
  let inference: ReturnType<typeof createClient<typeof InferenceService>>;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      HEARTBEAT_INTERVAL_MS: "200",
      QUEUE_MAX_WAIT_MS: String(QUEUE_MAX_WAIT_MS),
      QUEUE_UPDATE_MS: "200",
    });
    accountKey = await newAccountKey(coordinator.url);
    inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
  });
  afterEach(async () => {
    nodes.killAll();
    await expect.poll(() => coordinator.registry.size).toBe(0);
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  type Timed = { at: number; event: ChatResponse["event"] };
  /** A chat whose events can be watched while it runs. */
  function chatting(content: string): { events: Timed[]; done: Promise<Timed[]> } {
    const events: Timed[] = [];
    const done = (async () => {
      for await (const response of inference.chat({ params: { messages: [{ role: 2, content }] } }))
        events.push({ at: Date.now(), event: response.event });
      return events;
    })();
    return { events, done };
  }
  const chat = (content: string) => chatting(content).done;
  const accepted = (events: { event: ChatResponse["event"] }[]) =>
    events.flatMap(({ event }) => (event.case === "accepted" ? [event.value.nodeId] : []))[0];
  const queued = (events: { event: ChatResponse["event"] }[]) =>
    events.flatMap(({ event }) => (event.case === "queued" ? [event.value] : []));

  describe("no capable node online", () => {
    it("is Unavailable at once with no node at all, over gRPC and over SSE", async () => {
      const started = Date.now();
      const err = await connectFailure(chat(simplePrompt));
      expect(Date.now() - started).toBeLessThan(QUEUE_MAX_WAIT_MS / 2); // the queue would have waited it all
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toBe(
        "no node that serves SIMPLE requests (tier BASIC or MID or PRO) is online; no node is online",
      );

      const sse = await fetch(`${coordinator.url}/api/chat/stream`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: simplePrompt }] }),
      });
      // refused before the stream began: a plain 503 with the error's JSON, not a queued event
      expect(sse.status).toBe(503);
      expect(await sse.json()).toMatchObject({
        code: "unavailable",
        message: expect.stringContaining("no node is online"),
      });
    });

    it(
      "is Unavailable at once, naming the tier, when only BASIC nodes are online for an ADVANCED " + "request",
      async () => {
        const basic = await nodes.start({ nodeId: "basic-only", parameterCount: 3e9, tokensPerSecond: 50 });
        const started = Date.now();
        const err = await connectFailure(chat(advancedPrompt));
        expect(Date.now() - started).toBeLessThan(QUEUE_MAX_WAIT_MS / 2);
        expect(err.code).toBe(Code.Unavailable);
        expect(err.rawMessage).toBe(
          "no node that serves ADVANCED requests (tier PRO) is online; online now: 1 BASIC node",
        );
        expect(basic.assigns).toHaveLength(0);
        // the BASIC node still answers what it serves
        expect(accepted(await chat(simplePrompt))).toBe("basic-only");
      },
    );
  });

  describe("capable nodes busy", () => {
    it("queues, repeating its position and an estimated wait that counts down, then serves", async () => {
      const busy = await nodes.start({
        nodeId: "busy",
        ...mid,
        script: () => ({ tokens: Array.from({ length: 20 }, (_, i) => `t${i} `), delayMs: 80 }),
      });
      await chat(simplePrompt); // one task completed: the node's service time (~1.6 s) is known
      expect(coordinator.registry.get("busy")!.serviceTimes).toHaveLength(1);
      const holder = chat(simplePrompt);
      await expect.poll(() => busy.assigns.length).toBe(2);
      const first = chatting(simplePrompt);
      await expect.poll(() => first.events.length).toBeGreaterThan(0);
      const second = chat(simplePrompt);
      const [, firstEvents, secondEvents] = await Promise.all([holder, first.done, second]);

      const waits = queued(firstEvents);
      // told again every 200 ms while it waited (~1.5 s), not once
      expect(waits.length).toBeGreaterThanOrEqual(4);
      expect(waits.every((q) => q.position === 1 && q.estimatedWaitMs !== undefined)).toBe(true);
      const estimates = waits.map((q) => q.estimatedWaitMs!);
      expect(estimates[0]).toBeGreaterThan(estimates.at(-1)!);
      expect(estimates.every((ms, i) => i === 0 || ms <= estimates[i - 1]!)).toBe(true);
      expect(estimates[0]).toBeLessThanOrEqual(1_700);
      expect(waits[0]!.maxWaitMs).toBeGreaterThan(waits.at(-1)!.maxWaitMs);
      expect(waits[0]!.maxWaitMs).toBeLessThanOrEqual(QUEUE_MAX_WAIT_MS);

      // the second waiter started behind the first: its first estimate adds one more service time
      const behind = queued(secondEvents);
      expect(behind[0]!.position).toBe(2);
      expect(behind[0]!.estimatedWaitMs!).toBeGreaterThan(estimates[0]!);
      expect(behind.some((q) => q.position === 1)).toBe(true);
      expect(accepted(firstEvents)).toBe("busy");
      expect(accepted(secondEvents)).toBe("busy");
    });
  });

  describe("context windows", () => {
    it("routes a long conversation to a node whose window holds it, though a faster one is idle", async () => {
      const small = await nodes.start({ nodeId: "small-window", ...mid, tokensPerSecond: 29, contextLength: 2_048 });
      await nodes.start({ nodeId: "large-window", ...mid, tokensPerSecond: 11, contextLength: 16_384 });
      expect(accepted(await chat(longConversation))).toBe("large-window");
      expect(small.assigns).toHaveLength(0);
      // a short one goes to the faster node as before
      expect(accepted(await chat(simplePrompt))).toBe("small-window");
    });

    it("refuses at once, in words with a new-chat hint, when no online node's window holds it", async () => {
      const small = await nodes.start({ nodeId: "small-window", ...mid, contextLength: 2_048 });
      const started = Date.now();
      const err = await connectFailure(chat(longConversation));
      expect(Date.now() - started).toBeLessThan(QUEUE_MAX_WAIT_MS / 2);
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(err.rawMessage).toMatch(
        new RegExp(
          "^the conversation is about [\\d,]+ tokens, more than the context of any online node that can " +
            "take it \\(the largest holds 2,048 tokens\\); start a new chat",
        ),
      );
      expect(err.rawMessage).not.toContain("CONTEXT_TOO_LONG");
      expect(small.assigns).toHaveLength(0);
    });

    it(
      "moves a conversation a node refused as too long to a node with a larger window; with none, says so in " +
        "words",
      async () => {
        const refusing = await nodes.start({
          nodeId: "refusing",
          ...mid,
          tokensPerSecond: 29,
          contextLength: 8_192,
          script: () => ({ tokens: [], failWith: TaskErrorReason.CONTEXT_TOO_LONG }),
        });
        await nodes.start({
          nodeId: "roomy",
          ...mid,
          tokensPerSecond: 11,
          contextLength: 32_768,
          script: () => ({ tokens: ["fits"] }),
        });
        const events = await chat(longConversation);
        expect(refusing.assigns).toHaveLength(1);
        // the client saw one accepted (the first node) and tokens from the second
        const done = events.at(-1)!.event;
        expect(done.case === "done" && [done.value.nodeId, done.value.nodeIds]).toEqual([
          "roomy",
          ["refusing", "roomy"],
        ]);
        expect(events.flatMap(({ event }) => (event.case === "token" ? [event.value.text] : []))).toEqual(["fits"]);

        nodes.all()[1]!.kill();
        await expect.poll(() => coordinator.registry.size).toBe(1);
        const err = await connectFailure(chat(longConversation));
        expect(err.code).toBe(Code.FailedPrecondition);
        expect(err.rawMessage).toMatch(
          new RegExp(
            "^the conversation is about [\\d,]+ tokens; node refusing refused it as longer than its " +
              "context, and no online node that can take it has a larger one .*; start a new chat",
          ),
        );
      },
    );
  });
});
