// /chat in Debian's Chromium against a real coordinator: a real agent's answer streaming in, Stop reaching the
// node, model HTML that never runs, the phone layout, the queue, and the anonymous rate limit in words.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../../gen/iris/v1/inference_pb.ts";
import { buildWeb } from "../../scripts/build-web.ts";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";
import { startAgent, type AgentProcess } from "../support/agent-process.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "../support/coordinator.ts";
import { startScriptedNode, type Script, type ScriptedNode } from "../support/scripted-node.ts";
import { launchChromium, openPage, screenshot, type WatchedPage } from "./chromium.ts";

let browser: Browser;
const opened: WatchedPage[] = [];

beforeAll(async () => {
  await buildWeb();
  browser = await launchChromium();
}, 60_000);
afterEach(async () => {
  for (const page of opened.splice(0)) await page.context.close();
});
afterAll(async () => {
  await browser?.close();
});

async function chatPage(url: string, viewport?: { width: number; height: number }): Promise<WatchedPage> {
  const watched = await openPage(browser, viewport);
  opened.push(watched);
  await watched.page.goto(url);
  return watched;
}

async function send(page: WatchedPage["page"], text: string): Promise<void> {
  await page.fill("#question", text);
  await page.press("#question", "Enter");
}

const lastAnswer = ".message.assistant >> nth=-1";

async function generateKey(coordinator: TestCoordinator): Promise<string> {
  return newAccountKey(coordinator.url);
}

describe("/chat with a real agent on the tiny llama.cpp model", () => {
  let coordinator: TestCoordinator;
  let agent: AgentProcess;

  beforeAll(async () => {
    const modelPath = join(mkdtempSync(join(tmpdir(), "iris-web-")), "tiny.gguf");
    writeTinyGguf(modelPath, { contextLength: 8192 });
    coordinator = await startTestCoordinator({ HEARTBEAT_INTERVAL_MS: "500" });
    agent = startAgent({
      COORDINATOR_URL: coordinator.url,
      IRIS_ACCOUNT_KEY: await generateKey(coordinator),
      NODE_ID: "tiny-web",
      IRIS_MODEL: modelPath,
    });
    await agent.waitForLog((line) => line.msg === "registered with the coordinator");
  }, 60_000);
  afterAll(async () => {
    agent?.kill();
    await coordinator?.close();
  });

  it("shows an answer that grows over several DOM updates before it ends, then its footer", async () => {
    const { page, cspViolations, errors } = await chatPage(`${coordinator.url}/chat?max_tokens=1000`);
    // record the answer's length at every DOM change while it streams
    await page.evaluate(
      `(() => {
      window.__lengths = [];
      new MutationObserver(() => {
        const answer = document.querySelector(".message.assistant");
        if (answer && answer.dataset.state === "streaming") ` +
        `window.__lengths.push(answer.querySelector(".content").textContent.length);
      }).observe(document.getElementById("conversation"), { childList: true, subtree: true, characterData: true });
    })()`,
    );
    await send(page, "Translate 'thank you' to German.");
    await page.waitForSelector('.message.assistant[data-state="done"]', { timeout: 30_000 });

    const lengths = (await page.evaluate("window.__lengths")) as number[];
    const distinct = [...new Set(lengths)].filter((n) => n > 0);
    expect(distinct.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...distinct)).toBeGreaterThan(distinct[0]!);
    expect(Number(await page.getAttribute(lastAnswer, "data-renders"))).toBeGreaterThanOrEqual(3);

    const footer = await page.textContent(`${lastAnswer} >> .meta`);
    expect(footer).toContain("SIMPLE");
    expect(footer).toContain("BASIC");
    expect(footer).toContain("node tiny-web");
    expect(footer).toMatch(/first token \d/);
    expect(footer).toMatch(/[\d,.]+ tok\/s/);
    expect(footer).toContain("1,000 tokens");
    expect(await cspViolations()).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("Stop aborts the call: the node is told to cancel and the task ends cancelled in the database", async () => {
    const { page } = await chatPage(`${coordinator.url}/chat?max_tokens=8000`);
    // a translation is SIMPLE, which the tiny model's BASIC node serves
    await send(page, "Translate 'good night' to Spanish.");
    await page.waitForSelector('.message.assistant[data-state="streaming"]', { timeout: 30_000 });
    await page.click("#stop");

    await page.waitForSelector('.message.assistant[data-state="stopped"]', { timeout: 5_000 });
    expect(await page.textContent(`${lastAnswer} >> .status`)).toBe("Stopped.");
    expect(await page.isVisible("#send")).toBe(true);
    expect(await page.isVisible("#stop")).toBe(false);

    const taskId = (await page.getAttribute(lastAnswer, "data-task-id"))!;
    expect(taskId).toMatch(/^[0-9a-f-]{36}$/);
    await agent.waitForLog(
      (line) => line.msg === "task cancelled by the coordinator" && line.taskId === taskId,
      10_000,
    );

    await expect
      .poll(
        async () => {
          await coordinator.journal.flush();
          const row = await coordinator.db
            .selectFrom("tasks")
            .select("status")
            .where("id", "=", taskId)
            .executeTakeFirst();
          return row?.status;
        },
        { timeout: 10_000 },
      )
      .toBe("cancelled");
  });
});

describe("/chat against a scripted node", () => {
  let coordinator: TestCoordinator;
  let node: ScriptedNode;
  const scripts: Script[] = [];

  beforeAll(async () => {
    coordinator = await startTestCoordinator();
    node = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey: await generateKey(coordinator),
      nodeId: "scripted-web",
      tokensPerSecond: 40,
      script: () => scripts.shift() ?? { tokens: ["Hello", "!"] },
    });
    await node.registered;
  });
  afterAll(async () => {
    node?.kill();
    await coordinator?.close();
  });

  it(
    "renders Markdown but runs nothing a model writes: HTML is shown as text, and the CSP blocks the " + "rest",
    async () => {
      scripts.push({
        delayMs: 5,
        tokens: [
          "Some **bold** text.\n\n",
          '<img src=x onerror="window.__pwned=1">',
          "\n\n",
          "<script>window.__pwned=2</script>",
          '\n\nInline <img src=x onerror="window.__pwned=3"> and <svg onload="window.__pwned=4"></svg>, ',
          'a [link](javascript:window.__pwned=5) and <iframe srcdoc="<script>parent.__pwned=6</script>"></iframe>.\n\n',
          "```html\n<script>window.__pwned=7</script>\n```\n",
        ],
      });
      const { page, cspViolations, errors } = await chatPage(`${coordinator.url}/chat`);
      await send(page, "Show me some HTML.");
      await page.waitForSelector('.message.assistant[data-state="done"]');
      await page.waitForTimeout(300); // an image error or a load handler would have fired by now

      expect(await page.evaluate("typeof window.__pwned")).toBe("undefined");
      const answer = page.locator(lastAnswer);
      expect(await answer.locator("img, script, iframe, svg, [onerror], [onload], a[href^='javascript']").count()).toBe(
        0,
      );
      expect(await page.locator("[onerror], [onload], iframe").count()).toBe(0);
      const text = await answer.locator(".content").textContent();
      expect(text).toContain('<img src=x onerror="window.__pwned=1">');
      expect(text).toContain("<script>window.__pwned=2</script>");
      expect(await answer.locator("strong").textContent()).toBe("bold");
      expect(await answer.locator("pre code").textContent()).toContain("<script>window.__pwned=7</script>");
      expect(await cspViolations()).toEqual([]);
      expect(errors).toEqual([]);

      // The second line: even HTML that reached the DOM unsanitized could not run a handler under the page's CSP.
      await page.evaluate(`document.body.insertAdjacentHTML("beforeend", '<img src="x" onerror="window.__pwned=8">')`);
      await page.waitForTimeout(300);
      expect(await page.evaluate("typeof window.__pwned")).toBe("undefined");
      expect((await cspViolations()).join("\n")).toMatch(/script-src/);
    },
  );

  it(
    "keeps the conversation: Shift+Enter is a new line, Enter sends with the history, code blocks are " + "styled",
    async () => {
      // tall enough that the README's screenshot shows the whole conversation
      const { page } = await chatPage(`${coordinator.url}/chat`, { width: 1000, height: 860 });
      await send(page, "Hi");
      await page.waitForSelector('.message.assistant[data-state="done"]');
      await page.fill("#question", "How do I reverse a list in Python?");
      await page.press("#question", "Shift+Enter");
      await page.keyboard.type("Short answer please.");
      expect(await page.inputValue("#question")).toBe("How do I reverse a list in Python?\nShort answer please.");
      expect(await page.locator(".message.user").count()).toBe(1);
      scripts.push({ delayMs: 8, tokens: pythonAnswer });
      await page.press("#question", "Enter");
      await page.waitForSelector('.message.assistant[data-state="done"] >> nth=1');

      expect(await page.locator(".message.user").count()).toBe(2);
      // the second request carried the whole conversation: question, answer, question
      const sent = node.payloads.at(-1)!;
      expect(sent.messages.map((m) => m.content)).toEqual([
        "Hi",
        "Hello!",
        "How do I reverse a list in Python?\nShort answer please.",
      ]);
      const pre = page.locator(`${lastAnswer} >> pre`);
      expect(await pre.locator("code").textContent()).toContain("numbers.reverse()");
      expect(
        await page.evaluate(
          `getComputedStyle(document.querySelector(".message.assistant:last-of-type pre")).overflowX`,
        ),
      ).toBe("auto");
      expect(await page.textContent(`${lastAnswer} >> .meta`)).toMatch(/PRO.*node scripted-web.*first token.*tok\/s/);
      await screenshot(page, "chat", { docs: true });
    },
  );

  it("fits a phone-sized screen: no sideways scrolling, the composer in reach", async () => {
    const watched = await openPage(browser, { width: 375, height: 740 });
    opened.push(watched);
    const { page } = watched;
    const encodings: (string | undefined)[] = [];
    page.on("response", (response) => {
      if (/\/assets\/.+\.js$/.test(response.url())) encodings.push(response.headers()["content-encoding"]);
    });
    await page.goto(`${coordinator.url}/chat`);
    // the scripts travel gzipped (a third of the bytes) where the browser accepts it, as phones do
    expect(encodings.length).toBeGreaterThanOrEqual(2);
    expect(new Set(encodings)).toEqual(new Set(["gzip"]));
    scripts.push({ delayMs: 2, tokens: pythonAnswer });
    await send(page, "How do I reverse a list in Python?");
    await page.waitForSelector('.message.assistant[data-state="done"]');
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(375);
    const composer = (await page.locator("#composer").boundingBox())!;
    expect(composer.y + composer.height).toBeLessThanOrEqual(740);
    expect(composer.width).toBeLessThanOrEqual(375);
    await screenshot(page, "chat-phone");
  });

  it(
    "asks for a division mode from Options: consensus over three nodes, the verdict and the nodes in the " + "footer",
    async () => {
      const accountKey = await generateKey(coordinator);
      const peers = ["scripted-web-2", "scripted-web-3"].map((nodeId) =>
        startScriptedNode({ baseUrl: coordinator.url, accountKey, nodeId, script: () => ({ tokens: ["Hello", "!"] }) }),
      );
      try {
        await Promise.all(peers.map((peer) => peer.registered));
        const { page } = await chatPage(`${coordinator.url}/chat`);
        await page.click("#options summary");
        await page.selectOption("#mode", "consensus");
        await send(page, "Say hello.");
        await page.waitForSelector('.message.assistant[data-state="done"]', { timeout: 10_000 });
        expect(await page.textContent(`${lastAnswer} >> .content`)).toContain("Hello!");
        const footer = await page.textContent(`${lastAnswer} >> .meta`);
        expect(footer).toContain("consensus, verified");
        expect(footer).toMatch(/nodes scripted-web(-\d)?, scripted-web(-\d)?/);
        expect(footer).not.toContain("continued by");
      } finally {
        for (const peer of peers) peer.kill();
        await expect.poll(() => coordinator.registry.size).toBe(1);
      }
    },
  );

  it("shows the queue position while every capable node is busy", async () => {
    scripts.push({ delayMs: 100, tokens: Array.from({ length: 25 }, (_, i) => `w${i} `) });
    const assignedBefore = node.assigns.length;
    const busy = (async () => {
      const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
      for await (const _ of inference.chat({
        params: { messages: [{ role: Role.USER, content: "Keep the node busy" }] },
      }));
    })();
    await expect.poll(() => node.assigns.length, { timeout: 5_000 }).toBe(assignedBefore + 1);
    const { page } = await chatPage(`${coordinator.url}/chat`);
    await send(page, "Am I next?");
    await expect
      .poll(() => page.textContent(`${lastAnswer} >> .status`), { timeout: 5_000 })
      .toMatch(/Waiting for a free node — position 1/);
    await busy;
    await page.waitForSelector('.message.assistant[data-state="done"]', { timeout: 10_000 });
  });
});

describe("/chat under the anonymous rate limit (1 message per 24 h)", () => {
  let coordinator: TestCoordinator;
  let node: ScriptedNode;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ RATE_LIMIT_ANONYMOUS_PER_DAY: "1" });
    node = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey: await generateKey(coordinator),
      nodeId: "limited-web",
    });
    await node.registered;
  });
  afterAll(async () => {
    node?.kill();
    await coordinator?.close();
  });

  it("answers the first anonymous message and refuses the second with the wait in words", async () => {
    const { page } = await chatPage(`${coordinator.url}/chat`);
    await send(page, "Hello");
    await page.waitForSelector('.message.assistant[data-state="done"]');
    await send(page, "Hello again");
    await page.waitForSelector('.message.assistant[data-state="failed"]');
    const refusal = await page.textContent(`${lastAnswer} >> .status.error`);
    expect(refusal).toMatch(/^You've used your free message for today\. Next message allowed in (23 h 59 min|24 h)\./);
    expect(await page.getAttribute(`${lastAnswer} >> .status.error`, "role")).toBe("alert");
    expect(await page.isVisible("#send")).toBe(true);
    await screenshot(page, "chat-rate-limited");
  });
});

const pythonAnswer = `There are three common ways:

1. **In place** with \`list.reverse()\`:

\`\`\`python
numbers = [1, 2, 3]
numbers.reverse()
print(numbers)  # [3, 2, 1]
\`\`\`

2. **A reversed copy** with slicing: \`numbers[::-1]\`
3. **An iterator** with \`reversed(numbers)\`, handy in \`for\` loops.

> \`reverse()\` returns \`None\`, so don't write \`numbers = numbers.reverse()\`.`
  .split(/(?<=\s)/)
  .filter(Boolean);
