// /chat in Debian's Chromium before a node answers: no capable node said at once, a queue position and estimate
// that move, a conversation too long for every node online said in words with New chat, and a malformed key
// in Options that leaves the typed question where it was.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../../gen/iris/v1/inference_pb.ts";
import type { TaskPayload } from "../../gen/iris/v1/node_pb.ts";
import { buildWeb } from "../../scripts/build-web.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "../support/coordinator.ts";
import { ScriptedNodes } from "../support/scripted-node.ts";
import { launchChromium, openPage, screenshot, type WatchedPage } from "./chromium.ts";

let browser: Browser;
let coordinator: TestCoordinator;
let accountKey: string;
const nodes = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey }));
const opened: WatchedPage[] = [];
const lastAnswer = ".message.assistant >> nth=-1";
const slow = { tokens: Array.from({ length: 30 }, (_, i) => `w${i} `), delayMs: 100 };

beforeAll(async () => {
  await buildWeb();
  browser = await launchChromium();
  coordinator = await startTestCoordinator({
    HEARTBEAT_INTERVAL_MS: "200",
    QUEUE_MAX_WAIT_MS: "20000",
    QUEUE_UPDATE_MS: "300",
  });
  accountKey = await newAccountKey(coordinator.url);
}, 60_000);
afterEach(async () => {
  for (const page of opened.splice(0)) await page.context.close();
  nodes.killAll();
  await expect.poll(() => coordinator.registry.size).toBe(0);
});
afterAll(async () => {
  await browser?.close();
  await coordinator?.close();
});

async function chatPage(): Promise<WatchedPage["page"]> {
  const watched = await openPage(browser);
  opened.push(watched);
  await watched.page.goto(`${coordinator.url}/chat`);
  return watched.page;
}

async function send(page: WatchedPage["page"], text: string): Promise<void> {
  await page.fill("#question", text);
  await page.press("#question", "Enter");
}

async function chatOverGrpc(content: string): Promise<void> {
  const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
  for await (const _ of inference.chat({ params: { messages: [{ role: Role.USER, content }] } }));
}

describe("/chat before a node answers", () => {
  it("says at once that no node can answer, naming the tier, when none that could is online", async () => {
    await nodes.start({ nodeId: "basic-only", parameterCount: 3e9, tokensPerSecond: 50 });
    const page = await chatPage();
    const started = Date.now();
    await send(page, "Write a Python function that parses ISO dates, and prove it handles leap years.");
    await page.waitForSelector('.message.assistant[data-state="failed"]', { timeout: 5_000 });
    expect(Date.now() - started).toBeLessThan(5_000); // the queue would have waited 20 s
    expect(await page.textContent(`${lastAnswer} >> .status.error`)).toBe(
      "No node can answer right now: none that handles this kind of question is online (advanced questions need a " +
        "PRO node). Please try again in a few minutes.",
    );
  });

  it("shows the queue position with an estimate, and both move while it waits", async () => {
    // the holder keeps the node 10 s, so the wait outlasts a slow page load on a loaded machine (3 s did not)
    const holding = { tokens: Array.from({ length: 100 }, (_, i) => `h${i} `), delayMs: 100 };
    const script = (_: unknown, payload: TaskPayload) =>
      payload.messages.some((m) => m.content === "Keep the node busy") ? holding : slow;
    const node = await nodes.start({ nodeId: "busy", maxConcurrentTasks: 1, tokensPerSecond: 20, script });
    await chatOverGrpc("Warm up"); // one completed task: the node's service time (~3 s) is known
    const holder = chatOverGrpc("Keep the node busy");
    await expect.poll(() => node.assigns.length).toBe(2);
    const page = await chatPage();
    await send(page, "Am I next?");
    const status = `${lastAnswer} >> .status`;
    const seen = new Set<string>();
    await expect
      .poll(
        async () => {
          const text = (await page.textContent(status)) ?? "";
          if (text.startsWith("Waiting")) seen.add(text);
          return seen.size;
        },
        { timeout: 5_000, interval: 100 },
      )
      .toBeGreaterThanOrEqual(3);
    for (const text of seen)
      expect(text).toMatch(
        /^Waiting for a free node — position 1 in the queue, a node in about \d+ s \(waiting at most \d+ s more\)…$/,
      );
    await screenshot(page, "chat-queued");
    await holder;
    await page.waitForSelector('.message.assistant[data-state="done"]', { timeout: 10_000 });
  });

  it(
    "says in words when the conversation outgrew every online node's context, and New chat keeps the " + "question",
    async () => {
      // a PRO node serves every difficulty: only its window can refuse the long paste (which is never SIMPLE)
      await nodes.start({
        nodeId: "small-window",
        parameterCount: 70e9,
        tokensPerSecond: 40,
        contextLength: 2_048,
        script: () => ({ tokens: ["Sure."] }),
      });
      const page = await chatPage();
      await send(page, "Hello");
      await page.waitForSelector('.message.assistant[data-state="done"]');
      const pasted = `Summarize this report: ${"Revenue rose in every region while costs held steady. ".repeat(160)}`;
      await send(page, pasted);
      await page.waitForSelector('.message.assistant[data-state="failed"]', { timeout: 5_000 });
      const refusal = (await page.textContent(`${lastAnswer} >> .status.error`)) ?? "";
      expect(refusal).toMatch(
        new RegExp(
          "^This conversation has grown too long for the nodes online now \\(about [\\d,]+ tokens; the " +
            "largest node online holds 2,048\\)\\. Start a new chat to go on\\. New chat$",
        ),
      );
      expect(refusal).not.toContain("CONTEXT_TOO_LONG");
      await screenshot(page, "chat-too-long");

      await page.click(`${lastAnswer} >> .status.error >> button:has-text("New chat")`);
      expect(await page.locator(".message").count()).toBe(0);
      expect(await page.isVisible("#welcome")).toBe(true);
      expect(await page.inputValue("#question")).toBe(pasted.trim()); // as it was sent
    },
  );

  it("keeps the typed question when the account key in Options is malformed, and sends it once fixed", async () => {
    await nodes.start({ nodeId: "answers", script: () => ({ tokens: ["Hi", "!"] }) });
    const page = await chatPage();
    await page.click("#options summary");
    await page.fill("#account-key", "1234 5678");
    await send(page, "Is my question still here?");
    expect(await page.isVisible("#options-error")).toBe(true);
    expect(await page.textContent("#options-error")).toMatch(/16 digits/);
    expect(await page.inputValue("#question")).toBe("Is my question still here?");
    expect(await page.locator(".message").count()).toBe(0);
    expect(await page.evaluate("document.activeElement.id")).toBe("account-key");

    await page.fill("#account-key", "");
    await page.press("#question", "Enter");
    await page.waitForSelector('.message.assistant[data-state="done"]');
    expect(await page.inputValue("#question")).toBe("");
    expect(await page.isVisible("#options-error")).toBe(false);
  });
});
