// The real agent's terminal UI in a real pseudo-terminal (tmux): it registers on a real coordinator, shows a task,
// pauses (the coordinator then routes it nothing), resumes, survives a resize, and quits with exit code 0 on `q`.
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { writeTinyGguf } from "./fixtures/tiny-gguf.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const socket = `iris-test-${randomUUID().slice(0, 8)}`;
const session = "agent";
const hasTmux = (() => {
  try {
    execFileSync("tmux", ["-V"]);
    return true;
  } catch {
    return false;
  }
})();

function tmux(...args: string[]): string {
  return execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** The pane's text as the operator sees it. */
function screen(): string {
  return tmux("capture-pane", "-p", "-t", session);
}

async function waitForScreen(test: (text: string) => boolean, what: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      last = screen();
    } catch {
      // the session ended (the agent exited): the last capture is what there is
    }
    if (test(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the screen never showed ${what}; last screen:\n${last}`);
}

const shellQuote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

describe.skipIf(!hasTmux)("iris-agent's terminal UI in a pseudo-terminal", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let dir: string;
  const nodeId = "tui-node";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "iris-tui-"));
    writeTinyGguf(join(dir, "tiny.gguf"), { contextLength: 8192 });
    coordinator = await startTestCoordinator({ HEARTBEAT_INTERVAL_MS: "500", QUEUE_MAX_WAIT_MS: "20000" });
    accountKey = await newAccountKey(coordinator.url);
    const env = {
      COORDINATOR_URL: coordinator.url,
      IRIS_ACCOUNT_KEY: accountKey,
      NODE_ID: nodeId,
      IRIS_MODEL: join(dir, "tiny.gguf"),
      IRIS_THREADS: "1",
      BENCHMARK_TOKENS: "16",
      NODE_KEY_PATH: join(dir, "node.key"),
      IRIS_LOG_FILE: join(dir, "agent.log"),
      // a completed task's "task ended" line is at debug
      LOG_LEVEL: "debug",
      TERM: "xterm-256color",
    };
    const assignments = Object.entries(env)
      .map(([k, v]) => `${k}=${shellQuote(v)}`)
      .join(" ");
    // the exit code lands in a file: the pane (and the session) closes when the command ends
    const command =
      `cd ${shellQuote(root)} && env ${assignments} ${shellQuote(process.execPath)} --import tsx ` +
      `agent/main.ts; echo $? > ${shellQuote(join(dir, "exit-code"))}`;
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", command);
  }, 60_000);

  afterAll(async () => {
    try {
      tmux("kill-server");
    } catch {
      // already gone with its last session
    }
    await coordinator?.close();
  });

  it("shows registration and tier, a live task, pause and resume on the wire, a resize, and quits with 0 on " +
    "q", async () => {
    // registered: connection state, node id, masked key, tier and why, model, benchmark
    let text = await waitForScreen(
      (s) => /● registered/.test(s) && /Tier\s+BASIC/.test(s),
      "the registered state and tier",
    );
    expect(text).toContain(`node ${nodeId}`);
    expect(text).toContain(`account **** **** **** ${accountKey.replace(/\D/g, "").slice(-4)}`);
    expect(text).not.toContain(accountKey);
    expect(text).toMatch(/Tier\s+BASIC\s+\S.*→ BASIC/);
    expect(text).toMatch(
      /Model\s+Iris Tiny Test Model · 0\.1M params · F32 · ctx 8,192 · backend embedded · bench [\d,.]+ tok\/s/,
    );
    expect(text).toMatch(/GPU\s+none detected · serving on the CPU/);
    expect(text).toMatch(/CPU\s+\d+ cores?\s+LOAD\[/);
    expect(text).toMatch(/registered with the coordinator: tier BASIC/);
    expect(text).not.toContain('{"level"'); // no log line on the screen: logs go to the file
    expect(text.split("\n")[39]).toMatch(/^ q Quit {2}p Pause/);

    // a chat through the coordinator: the task shows up live, then in the totals
    const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    const chat = async (maxTokens: number) => {
      let done;
      for await (const r of inference.chat({
        params: { messages: [{ role: Role.USER, content: "Translate 'thank you' to German." }], maxTokens },
      })) {
        if (r.event.case === "done") done = r.event.value;
      }
      return done;
    };
    const first = chat(3000);
    const liveRow = /[0-9a-f]{8}\s+SIMPLE\s+[\d,]+\s+3,000\s+\S+\s+[\d.]+s\s+█*░*\s+\d+%/;
    const withTask = await waitForScreen((s) => liveRow.test(s), "a live task row", 20_000);
    expect(withTask).toMatch(/1\/1 running/);
    expect((await first)?.nodeId).toBe(nodeId);
    text = await waitForScreen((s) => /Totals\s+1 completed\s+0 failed\s+3,000 tokens/.test(s), "the completed total");
    expect(text).toMatch(/task [0-9a-f]{8} completed: 3000 tokens/);

    // p pauses: the screen says so, the heartbeat tells the coordinator, which then routes the node nothing
    tmux("send-keys", "-t", session, "p");
    text = await waitForScreen((s) => /PAUSED/.test(s), "the paused badge");
    expect(text).toContain("paused · the coordinator sends this node no new tasks (p resumes)");
    expect(text).toContain(" q Quit  p Resume");
    await waitFor(() => coordinator.registry.get(nodeId)?.paused === true, "the coordinator to see the node paused");
    let served = false;
    const queued = chat(8).then((done) => ((served = true), done));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(served).toBe(false); // waiting in the coordinator's queue: a paused node gets no work
    expect(screen()).toMatch(/Totals\s+1 completed\s+0 failed\s+3,000 tokens/);

    // p resumes: the waiting request is served by this node
    tmux("send-keys", "-t", session, "p");
    await waitForScreen((s) => !/PAUSED/.test(s) && / p Pause/.test(s), "the pause badge gone");
    expect((await queued)?.nodeId).toBe(nodeId);
    await waitForScreen((s) => /Totals\s+2 completed/.test(s), "the second completed task");

    // a resize redraws the whole screen at the new size: title on top, key bar at the bottom, nothing stray
    tmux("resize-window", "-t", session, "-x", "80", "-y", "24");
    text = await waitForScreen(
      (s) => s.split("\n")[23]?.startsWith(" q Quit") === true,
      "the key bar on the last line at 80x24",
    );
    const lines = text.replace(/\n$/, "").split("\n");
    expect(lines).toHaveLength(24);
    expect(lines[0]).toMatch(/^ iris-agent \S+ {2}node tui-node/);
    expect(lines[1]).toMatch(/^ State\s+● registered/);
    expect(text.match(/iris-agent/g)).toHaveLength(1); // no leftover of the 120x40 frame

    // q: graceful quit, exit code 0
    tmux("send-keys", "-t", session, "q");
    await waitFor(() => existsSync(join(dir, "exit-code")), "the agent to exit", 20_000);
    expect(readFileSync(join(dir, "exit-code"), "utf8").trim()).toBe("0");
    const log = readFileSync(join(dir, "agent.log"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(log.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        "registered with the coordinator",
        "paused: taking no new tasks",
        "resumed: taking tasks",
        "stopped",
      ]),
    );
    expect(log.filter((l) => l.msg === "task ended").map((l) => l.outcome)).toEqual(["completed", "completed"]);
  }, 120_000);
});

async function waitFor(test: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
