// POST /api/chat/stream against a real coordinator and scripted nodes: named events parsed by eventsource-parser,
// a real `curl -N`, refusals as plain HTTP errors, an error event mid-stream, and a client abort reaching the node.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createParser } from "eventsource-parser";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "../../test/support/coordinator.ts";
import { type ScriptedNodeOptions, ScriptedNodes } from "../../test/support/scripted-node.ts";
import { CHAT_STREAM_PATH } from "./chat-sse.ts";

const messages = [{ role: "user", content: "Translate 'good morning' to French." }];

interface Received {
  event: string | undefined;
  data: Record<string, unknown>;
  at: number;
}

describe("POST /api/chat/stream", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  const nodes = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey }));

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      HEARTBEAT_INTERVAL_MS: "200",
      QUEUE_MAX_WAIT_MS: "2000",
      TASK_MAX_ATTEMPTS: "1",
    });
    accountKey = await newAccountKey(coordinator.url);
  });
  afterEach(async () => {
    nodes.killAll();
    await expect.poll(() => coordinator.registry.size).toBe(0);
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  const node = (options: Partial<ScriptedNodeOptions> & { nodeId: string }) => nodes.start(options);

  const post = (body: unknown, init: RequestInit = {}) =>
    fetch(coordinator.url + CHAT_STREAM_PATH, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      ...init,
    });

  /** The named events as eventsource-parser sees them, each with the time it was parsed. */
  async function read(response: Response, onEvent?: (event: Received) => void): Promise<Received[]> {
    const events: Received[] = [];
    const parser = createParser({
      onEvent: (message) => {
        const event = {
          event: message.event,
          data: JSON.parse(message.data) as Record<string, unknown>,
          at: Date.now(),
        };
        events.push(event);
        onEvent?.(event);
      },
    });
    const decoder = new TextDecoder();
    for await (const bytes of response.body!) parser.feed(decoder.decode(bytes, { stream: true }));
    return events;
  }

  it("streams named events in order, each token as its own event as soon as the node sends it", async () => {
    await node({ nodeId: "mid", script: () => ({ tokens: ["Bon", "jour", " !"], delayMs: 150 }) });
    const response = await post({ messages, max_tokens: 16 });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const events = await read(response);
    expect(events.map((e) => e.event)).toEqual(["accepted", "token", "token", "token", "done"]);
    expect(events[0]!.data).toMatchObject({
      difficulty: "simple",
      tier: "mid",
      node_id: "mid",
      model: "scripted-8B-Q4_K_M",
      classifier: "local",
      division_mode: "single",
    });
    expect(events.slice(1, 4).map((e) => e.data)).toEqual([{ text: "Bon" }, { text: "jour" }, { text: " !" }]);
    // 150 ms apart on the wire: a buffered stream would parse them all at once at the end
    expect(events[3]!.at - events[1]!.at).toBeGreaterThanOrEqual(200);
    expect(events[4]!.data).toMatchObject({
      task_id: events[0]!.data.task_id,
      usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
      node_id: "mid",
      node_ids: ["mid"],
      finish_reason: "stop",
      verified: false,
    });
    expect((events[4]!.data.timings as Record<string, number>).total_ms).toBeGreaterThanOrEqual(300);
    expect(nodes.at(0)!.assigns[0]!.maxTokens).toBe(16);
  });

  it("tells a waiting request its queue position before it is accepted", async () => {
    await node({ nodeId: "busy", maxConcurrentTasks: 1, script: () => ({ tokens: ["a", "b"], delayMs: 300 }) });
    const first = post({ messages });
    await expect.poll(() => nodes.at(0)!.assigns.length).toBe(1);
    const second = await read(await post({ messages }));
    expect(second.map((e) => e.event)).toEqual(["queued", "accepted", "token", "token", "done"]);
    expect(second[0]!.data).toMatchObject({ position: 1 });
    await (await first).text();
  });

  it("works with curl -N: the raw lines are event: and data: pairs", async () => {
    await node({ nodeId: "mid" });
    const { stdout } = await promisify(execFile)("curl", [
      "-sN",
      "-X",
      "POST",
      coordinator.url + CHAT_STREAM_PATH,
      "-H",
      "content-type: application/json",
      "-d",
      JSON.stringify({ messages: [{ role: "user", content: "Say hi" }] }),
    ]);
    const lines = stdout.split("\n");
    expect(lines[0]).toBe("event: accepted");
    expect(lines.filter((line) => line === "event: token")).toHaveLength(4);
    const tokenData = lines.flatMap((line, i) =>
      lines[i - 1] === "event: token" ? [JSON.parse(line.slice("data: ".length)).text] : [],
    );
    expect(tokenData.join("")).toBe("Hello, world!");
    const done = lines.indexOf("event: done");
    expect(done).toBeGreaterThan(lines.lastIndexOf("event: token"));
    expect(JSON.parse(lines[done + 1]!.slice("data: ".length))).toMatchObject({
      node_ids: ["mid"],
      finish_reason: "stop",
    });
  });

  it("takes division_mode and consensus_nodes from the body: consensus over two nodes, marked verified", async () => {
    for (const nodeId of ["c-1", "c-2", "c-3"]) await node({ nodeId, script: () => ({ tokens: ["Bon", "jour"] }) });
    const events = await read(await post({ messages, division_mode: "consensus", consensus_nodes: 2 }));
    expect(events[0]).toMatchObject({ event: "accepted", data: { division_mode: "consensus" } });
    expect(
      events
        .filter((e) => e.event === "token")
        .map((e) => e.data.text)
        .join(""),
    ).toBe("Bonjour");
    const done = events.at(-1)!;
    expect(done).toMatchObject({ event: "done", data: { verified: true } });
    expect(done.data.node_ids).toHaveLength(2); // two of the three nodes, as asked
    expect(nodes.all().reduce((sum, n) => sum + n.assigns.length, 0)).toBe(2);
  });

  it("refuses a bad body with 400 and a JSON error naming the field", async () => {
    const cases: [unknown, string | null][] = [
      [{ messages: [{ role: "robot", content: "hi" }] }, "messages[0].role"],
      [{ messages: [{ role: "user", content: 42 }] }, "messages[0].content"],
      [{ messages: [] }, "messages"],
      [{ messages, max_tokens: 0 }, "max_tokens"],
      [{ messages, difficulty: "hard" }, "difficulty"],
      [{ messages, account_key: "1234-5678" }, "account_key"],
      [{ messages, division_mode: "majority" }, "division_mode"],
      [{ messages, division_mode: "consensus", consensus_nodes: 10 }, "consensus_nodes"],
      [{ messages, consensus_nodes: 2 }, "consensus_nodes"],
      [{ messages, maxTokens: 5 }, "maxTokens"],
      [["not", "an", "object"], null],
    ];
    for (const [body, field] of cases) {
      const response = await post(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      const error = (await response.json()) as Record<string, unknown>;
      expect(error).toMatchObject({ code: "invalid_argument", field });
      expect(error.message).toContain(field ?? "JSON object");
    }
    const malformed = await fetch(coordinator.url + CHAT_STREAM_PATH, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{",
    });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ code: "invalid_argument" });
    // curl -d without -H sends a form content type
    const form = await fetch(coordinator.url + CHAT_STREAM_PATH, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "{}",
    });
    expect(form.status).toBe(415);
    expect(await form.json()).toMatchObject({
      message: "send the body as JSON with the header content-type: application/json",
    });
  });

  it("answers an unknown account key with 401 and an unserved model with 404, before any stream", async () => {
    await node({ nodeId: "mid" });
    const unknownKey = await post({ messages, account_key: "0000 0000 0000 0001" });
    expect(unknownKey.status).toBe(401);
    expect(await unknownKey.json()).toEqual({
      code: "unauthenticated",
      message: "account_key: unknown or revoked account key",
    });
    const unknownModel = await post({ messages, model: "gpt-9" });
    expect(unknownModel.status).toBe(404);
    expect(await unknownModel.json()).toMatchObject({ code: "not_found" });
    expect(nodes.at(0)!.assigns).toHaveLength(0);
    const withKey = await read(await post({ messages, account_key: accountKey }));
    expect(withKey.at(-1)!.event).toBe("done");
  });

  it("ends with an error event when the answer fails after the stream began", async () => {
    await node({ nodeId: "dies", script: () => ({ tokens: ["a", "b", "c"], dieAfter: 2, delayMs: 50 }) });
    const events = await read(await post({ messages }));
    expect(events.map((e) => e.event)).toEqual(["accepted", "token", "token", "error"]);
    expect(events[3]!.data).toMatchObject({ code: "unavailable" });
    expect(events[3]!.data.message).toMatch(/dies/);
  });

  it("cancels the node's task when the client goes away", async () => {
    const slow = await node({
      nodeId: "slow",
      script: () => ({ tokens: Array.from({ length: 50 }, (_, i) => `t${i} `), delayMs: 50 }),
    });
    const abort = new AbortController();
    const response = await post({ messages }, { signal: abort.signal });
    let tokens = 0;
    await read(response, (event) => {
      if (event.event === "token" && ++tokens === 2) abort.abort();
    }).catch((err: unknown) => expect((err as Error).name).toBe("AbortError"));
    await expect.poll(() => slow.cancels.map((c) => c.taskId)).toEqual([slow.assigns[0]!.taskId]);
    await coordinator.journal.flush();
    const row = await coordinator.db
      .selectFrom("tasks")
      .select("status")
      .where("id", "=", slow.assigns[0]!.taskId)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe("cancelled");
  });
});
