// bench/peers-lean.ts, the peers trace's third target: its two processes answer an OpenAI request with the upstream's
// exact text through a sealed TaskAssign and TaskResult (so the benchmark measures a path that works), and refuse a
// body Iris's rules refuse; its front on node:http and on Fastify (PEERS_LEAN_FASTIFY=1) alike.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chat, createTarget } from "../bench/peers-client.ts";
import { type ServerProcess, startFloorProcesses, startUpstreamProcess } from "../bench/peers-processes.ts";

describe.each<{ front: string; env: Record<string, string> }>([
  { front: "node:http", env: {} },
  { front: "Fastify", env: { PEERS_LEAN_FASTIFY: "1" } },
])("the peers trace's lean pair, its front on $front", ({ front, env }) => {
  let upstream: ServerProcess;
  let pair: { front: ServerProcess; back: ServerProcess };
  let url: string;

  beforeAll(async () => {
    upstream = await startUpstreamProcess();
    pair = await startFloorProcesses(upstream.port, () => ({ args: ["--import", "tsx"], env }), "bench/peers-lean.ts");
    url = `http://127.0.0.1:${pair.front.port}/v1/chat/completions`;
  }, 60_000);

  afterAll(async () => {
    await Promise.all([pair?.front.stop(), pair?.back.stop(), upstream?.stop()]);
  });

  it("relays whole answers, each the upstream's text with its usage", async () => {
    const target = createTarget("lean", url, { authorization: "Bearer 1234 5678 1234 5678" }, 1);
    // chat() rejects unless the status is 200, the text is the upstream's and the usage is there
    for (let i = 0; i < 3; i++) await expect(chat(target, false)).resolves.toMatchObject({ reads: expect.any(Number) });
  });

  it("refuses a body without messages, naming the field", async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "auto", messages: [] }),
    });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("messages");
    // Fastify's onRequest hook set it, as the coordinator's does: the variant really runs through Fastify
    expect(response.headers.has("x-request-id")).toBe(front === "Fastify");
  });
});
