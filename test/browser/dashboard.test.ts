// /dashboard in Debian's Chromium against a real coordinator: live figures, chart and tables, a new node shown
// within seconds without a reload, the admin's payouts, and a stats stream that comes back after a restart.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../../gen/iris/v1/account_pb.ts";
import { DivisionMode, Role } from "../../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../../gen/iris/v1/inference_pb.ts";
import { buildWeb } from "../../scripts/build-web.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "../support/coordinator.ts";
import { startScriptedNode, TaskErrorReason, type Script, type ScriptedNode } from "../support/scripted-node.ts";
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

async function dashboard(url: string): Promise<WatchedPage> {
  const watched = await openPage(browser, { width: 1000, height: 1000 });
  opened.push(watched);
  await watched.page.goto(`${url}/dashboard`);
  return watched;
}

const words = (n: number, delayMs: number): Script => ({
  delayMs,
  tokens: Array.from({ length: n }, (_, i) => `word${i} `),
});

describe("/dashboard", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  const nodes: ScriptedNode[] = [];
  const scripts: Script[] = [];

  function node(
    nodeId: string,
    options: { modelName: string; parameterCount: number; tokensPerSecond: number },
  ): ScriptedNode {
    const started = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId,
      ...options,
      script: () => scripts.shift() ?? words(12, 5),
    });
    nodes.push(started);
    return started;
  }

  async function chat(content: string, signal?: AbortSignal, divisionMode?: DivisionMode): Promise<void> {
    const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    for await (const _ of inference.chat(
      { params: { messages: [{ role: Role.USER, content }], divisionMode } },
      { signal },
    ));
  }

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      JWT_SECRET: "a-test-secret-that-is-long-enough-0123456789",
      ADMIN_EMAILS: "admin@example.com",
    });
    accountKey = await newAccountKey(coordinator.url);
    await node("gpu-70b", {
      modelName: "Meta-Llama-3.1-70B-Instruct-Q4_K_M",
      parameterCount: 70e9,
      tokensPerSecond: 24,
    }).registered;
    await node("desk-7b", { modelName: "mistral-7b-instruct-v0.3-Q5_K_M", parameterCount: 7.2e9, tokensPerSecond: 18 })
      .registered;
    // some history: completed tasks, one the client cancelled, one the node could not take
    for (const question of ["What is 2+2?", "Translate hello to French", "Define entropy"]) await chat(question);
    scripts.push(words(200, 20));
    const cancelled = new AbortController();
    setTimeout(() => cancelled.abort(), 300);
    await chat("Tell me a long story", cancelled.signal).catch(() => {});
    scripts.push({ tokens: [], failWith: TaskErrorReason.CONTEXT_TOO_LONG });
    await chat("A document far too long for any context window").catch(() => {});
    // a divided request: one row for the request, one for its part (two models only: one node answers, unverified)
    await chat("What is the capital of Peru?", undefined, DivisionMode.CONSENSUS);
  });
  afterAll(async () => {
    for (const n of nodes) n.kill();
    await coordinator?.close();
  });

  it(
    "shows the figures, tables and chart live, and a newly connected node within seconds without a " + "reload",
    async () => {
      const { page, cspViolations, errors } = await dashboard(coordinator.url);
      await page.waitForSelector('#nodes tr[data-node-id="gpu-70b"]');
      await expect.poll(() => page.textContent("#live")).toBe("live");
      expect(await page.textContent("#nodes-online")).toBe("2");
      // requests: the consensus request once, not its part
      expect(await page.textContent("#tasks-completed")).toBe("4");
      await page.evaluate("window.__sameDocument = true");

      // the tables follow the stream within a second of the node count changing; 10 s only says "not a reload later"
      const fresh = node("fresh-node", {
        modelName: "phi-3-mini-3.8B-Q4_K_M",
        parameterCount: 3.8e9,
        tokensPerSecond: 45,
      });
      await fresh.registered;
      await page.waitForSelector('#nodes tr[data-node-id="fresh-node"]', { timeout: 10_000 });
      expect(await page.evaluate("window.__sameDocument")).toBe(true);
      await expect.poll(() => page.textContent("#nodes-online")).toBe("3");
      expect(await page.textContent("#tier-basic")).toBe("1");
      expect(await page.textContent("#tier-pro")).toBe("1");
      const freshRow = await page.locator('#nodes tr[data-node-id="fresh-node"] td').allTextContents();
      // nothing of the new node is checked yet: its capability reads "declared"
      expect(freshRow).toEqual([
        "fresh-node",
        "BASIC",
        "phi-3-mini-3.8B-Q4_K_M",
        "—",
        "45 tok/s",
        "declared",
        "100.0",
        "0 % (0/1)",
        "online",
      ]);

      // tokens flowing now show up in the figure and the chart
      scripts.push(words(120, 25), words(120, 25));
      const load = Promise.all([chat("Keep talking"), chat("And you too")]);
      await expect
        .poll(async () => Number((await page.textContent("#tokens-per-second"))!.split(" ")[0]), { timeout: 10_000 })
        .toBeGreaterThan(0);
      expect(await page.locator("#chart .uplot canvas").count()).toBe(1);
      await load;
      await expect.poll(() => page.textContent("#tasks-completed"), { timeout: 5_000 }).toBe("6");

      const modes = await page.locator("#tasks td.task-mode").allTextContents();
      expect(modes).toEqual(expect.arrayContaining(["single", "consensus", "consensus part"]));
      expect(await page.getAttribute("#tasks td.task-mode.part", "title")).toMatch(/^part of task [0-9a-f-]{36}$/);
      const statuses = await page.locator("#tasks td.task-status").allTextContents();
      expect(statuses).toEqual(expect.arrayContaining(["completed", "cancelled", "failed"]));
      expect(await page.locator("#leaderboard tbody tr").count()).toBe(3);
      expect(await page.textContent("#leaderboard tbody tr:first-child")).toMatch(/^1/);
      // a node that leaves is no longer a connected node (the leaderboard keeps it)
      fresh.kill();
      await page.waitForSelector('#nodes tr[data-node-id="fresh-node"]', { state: "detached", timeout: 10_000 });
      await expect.poll(() => page.textContent("#nodes-online")).toBe("2");
      expect(await page.locator("#nodes td.status").allTextContents()).toEqual(["online", "online"]);
      expect(await cspViolations()).toEqual([]);
      expect(errors).toEqual([]);
      await screenshot(page, "dashboard", { docs: true, fullPage: true });

      // on a 1280 px screen every column of the recent tasks is in view, Total and Task included: no sideways scroll
      await page.setViewportSize({ width: 1280, height: 900 });
      const tasksBox = (await page.evaluate(
        `(() => {
      const scroll = document.querySelector("#tasks").parentElement;
      const last = document.querySelector("#tasks thead th:last-child").getBoundingClientRect();
      return { scrollWidth: scroll.scrollWidth, clientWidth: scroll.clientWidth, lastRight: last.right, right: ` +
          `scroll.getBoundingClientRect().right };
    })()`,
      )) as { scrollWidth: number; clientWidth: number; lastRight: number; right: number };
      expect(tasksBox.scrollWidth).toBeLessThanOrEqual(tasksBox.clientWidth);
      expect(tasksBox.lastRight).toBeLessThanOrEqual(tasksBox.right);
      expect(await page.locator("#tasks thead th").allTextContents()).toEqual([
        "Time",
        "Status",
        "Difficulty",
        "Mode",
        "Tier",
        "Node",
        "Tokens",
        "TTFT",
        "Total",
        "Task",
      ]);
      await screenshot(page, "dashboard-1280", { fullPage: true });

      // on a phone the cards stack and wide tables scroll inside their panels, not the page
      await page.setViewportSize({ width: 375, height: 800 });
      await expect.poll(() => page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(375);
      await screenshot(page, "dashboard-phone", { fullPage: true });
    },
  );

  it("signs an admin in to show payouts, and says in words when it cannot", async () => {
    const accounts = createClient(AccountService, createGrpcTransport({ baseUrl: coordinator.url }));
    await accounts.register({ email: "admin@example.com", password: "correct horse battery staple" });
    await accounts.register({ email: "someone@example.com", password: "just a user's password" });
    const { page } = await dashboard(coordinator.url);
    expect(await page.isVisible("#admin-panel")).toBe(false);

    await page.fill("#admin-email", "admin@example.com");
    await page.fill("#admin-password", "wrong password");
    await page.click("#sign-in button");
    // scrypt makes every login take a while (on purpose)
    const slow = { timeout: 15_000 };
    await expect.poll(() => page.textContent("#admin-message"), slow).toBe("Email or password is wrong.");

    await page.fill("#admin-email", "someone@example.com");
    await page.fill("#admin-password", "just a user's password");
    await page.click("#sign-in button");
    await expect.poll(() => page.textContent("#admin-message"), slow).toMatch(/not an admin/);
    expect(await page.isVisible("#admin-panel")).toBe(false);

    await page.fill("#admin-email", "admin@example.com");
    await page.fill("#admin-password", "correct horse battery staple");
    await page.click("#sign-in button");
    await page.waitForSelector("#admin-panel:not([hidden])", slow);
    expect(await page.textContent("#admin-who")).toBe("Signed in as admin@example.com (admin)");
    await expect.poll(() => page.textContent("#payouts tbody")).toBe("No month has been paid out yet.");

    // the session lasts as long as the tab: a reload keeps it, signing out ends it
    await page.reload();
    await page.waitForSelector("#admin-panel:not([hidden])");
    await page.click("#sign-out");
    expect(await page.isVisible("#sign-in")).toBe(true);
    expect(await page.evaluate("sessionStorage.getItem('iris.adminToken')")).toBeNull();
  });
});

describe("/dashboard when its coordinator restarts", () => {
  it("shows the stream reconnecting with no figure or node claimed online meanwhile, then goes live again on the new " +
    "coordinator", async () => {
    let coordinator = await startTestCoordinator({ SHUTDOWN_TIMEOUT_MS: "200" });
    const port = String(coordinator.port);
    const scripted = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey: await newAccountKey(coordinator.url),
      nodeId: "steady",
    });
    try {
      await scripted.registered;
      const { page } = await dashboard(coordinator.url);
      await expect.poll(() => page.textContent("#live")).toBe("live");
      await expect.poll(() => page.textContent('#nodes tr[data-node-id="steady"] td.status')).toBe("online");
      expect(await page.textContent("#nodes-online")).toBe("1");
      await page.evaluate("window.__sameDocument = true");
      await coordinator.close();
      await expect.poll(() => page.getAttribute("#live", "data-state"), { timeout: 10_000 }).toBe("reconnecting");
      // nothing is known to be online while the coordinator does not answer
      for (const id of ["#nodes-online", "#tier-basic", "#tier-mid", "#tasks-running", "#tokens-per-second"])
        expect(await page.textContent(id), id).toBe("—");
      expect(await page.getAttribute("#nodes-online", "title")).toBe("1 when the coordinator last answered");
      expect(await page.textContent('#nodes tr[data-node-id="steady"] td.status')).toBe("unknown");
      await screenshot(page, "dashboard-reconnecting");
      coordinator = await startTestCoordinator({ PORT: port });
      await expect.poll(() => page.textContent("#live"), { timeout: 15_000 }).toBe("live");
      // a fresh coordinator: the scripted node does not come back, so the figures and the table say none
      await expect.poll(() => page.textContent("#nodes-online")).toBe("0");
      await expect.poll(() => page.textContent("#nodes tbody")).toBe("No node is connected.");
      expect(await page.evaluate("window.__sameDocument")).toBe(true);
    } finally {
      scripted.kill();
      await coordinator.close();
    }
  }, 60_000);
});
