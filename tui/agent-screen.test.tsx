// Frames of the agent screen in each state (ink-testing-library), its layout at 80x24 and narrower, and its keys.
import { stripVTControlCharacters } from "node:util";
import { render } from "ink-testing-library";
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup } from "ink-testing-library";
import { AgentState } from "../agent/state.ts";
import { AgentApp } from "./agent-app.tsx";
import { AgentScreen } from "./agent-screen.tsx";

const T0 = new Date(2026, 0, 5, 14, 3, 27).getTime();
const gpu = {
  name: "NVIDIA GeForce RTX 4090",
  vendor: "nvidia" as const,
  vramTotalMb: 24_564,
  vramUsedMb: 12_600,
  utilizationPercent: 45,
};
const host = { cores: 16, load1: 3.2, memoryUsedMb: 20_000, memoryTotalMb: 64_000 };

/** A state at a fixed clock; `at` moves the clock. */
function agent() {
  let now = T0;
  const state = new AgentState(
    {
      version: "0.1.0",
      nodeId: "gpu-box",
      accountKey: "1234 5678 9012 3456",
      coordinatorUrl: "https://iris.example:8080",
      backend: "lmstudio",
      maxConcurrentTasks: 2,
    },
    { now: () => now, schedule: () => () => {} },
  );
  return { state, at: (ms: number) => (now = T0 + ms) };
}

function started() {
  const a = agent();
  a.state.setModel({
    name: "Meta-Llama-3.1-8B-Instruct-Q4_K_M",
    parameterCount: 8.03e9,
    quantization: "Q4_K_M",
    contextLength: 8192,
  });
  a.state.setReadings([gpu], host);
  a.state.setBenchmark(42.4);
  return a;
}

function registered() {
  const a = started();
  a.state.connecting(0);
  a.state.registered({
    tier: "PRO",
    tierReason: "8B Q4_K_M counts as 8B (7–20B); 42 tok/s (> 30) → PRO",
    reputation: 112.5,
  });
  return a;
}

function frame(state: AgentState, nowMs: number, width = 120, height = 40): string {
  const { lastFrame } = render(
    <AgentScreen
      snapshot={state.snapshot}
      width={width}
      height={height}
      now={T0 + nowMs}
      logFile="data/agent-gpu-box.log"
    />,
  );
  return stripVTControlCharacters(lastFrame() ?? "");
}

afterEach(() => cleanup());

describe("AgentScreen frames", () => {
  it("starting: the stage start-up is in, no tier yet", () => {
    const { state } = agent();
    state.setStage("benchmarking the backend (64 tokens × 3 runs)");
    const f = frame(state, 0);
    expect(f).toContain("iris-agent 0.1.0  node gpu-box  account **** **** **** 3456");
    expect(f).not.toContain("1234 5678");
    expect(f).toMatch(/State\s+◌ starting · benchmarking the backend \(64 tokens × 3 runs\)/);
    expect(f).toContain("— computed by the coordinator at registration");
    expect(f).toContain("GPU     detecting…");
    expect(f).toContain("14:03:27 benchmarking the backend");
  });

  it("connecting, on a later attempt", () => {
    const { state } = started();
    state.connecting(2);
    expect(frame(state, 0)).toMatch(/State\s+◌ connecting \(attempt 3\)/);
  });

  it("registered with tasks: tier and why, model, GPU meters, the tasks table with progress, totals", () => {
    const a = registered();
    a.at(1_000);
    a.state.taskStarted({ taskId: "3f2a9c1e-0000-4000-8000-000000000001", difficulty: "COMPLEX", maxTokens: 400 });
    a.state.taskStarted({ taskId: "77b0d4aa-0000-4000-8000-000000000002", difficulty: "SIMPLE", maxTokens: 64 });
    a.at(1_500);
    for (let i = 0; i < 200; i++) a.state.taskToken("3f2a9c1e-0000-4000-8000-000000000001");
    a.state.taskToken("77b0d4aa-0000-4000-8000-000000000002");
    a.state.setReputation(122.5);
    a.state.setEarnings({ month: "2026-12", units: 48_213 });
    const f = frame(a.state, 6_000);
    expect(f).toMatch(/State\s+● registered for 6\.0s · reputation 122\.5 · 2026-12 so far ≈ 48,213 units/);
    expect(f).toMatch(/Tier\s+PRO {2}8B Q4_K_M counts as 8B \(7–20B\); 42 tok\/s \(> 30\) → PRO/);
    expect(f).toMatch(
      new RegExp(
        "Model\\s+Meta-Llama-3\\.1-8B-Instruct-Q4_K_M · 8\\.0B params · Q4_K_M · ctx 8,192 · backend " +
          "lmstudio · bench 42 tok\\/s",
      ),
    );
    expect(f).toMatch(/GPU0\s+NVIDIA GeForce RTX 4090\s+VRAM\[\|+ +12\.3G\/24\.0G\] UTIL\[\|+ +45%\]/);
    expect(f).toMatch(/CPU\s+16 cores\s+LOAD\[\|+ +3\.20\] RAM\[\|+ +19\.5G\/62\.5G\]/);
    expect(f).toMatch(/TASK\s+DIFFICULTY\s+TOKENS\s+MAX\s+TOK\/S\s+ELAPSED\s+PROGRESS\s+2\/2 running · 44 tok\/s/);
    // 200 of 400 tokens in 4.5 s since its first token: 44 tok/s, half done
    expect(f).toMatch(/3f2a9c1e {2}COMPLEX\s+200\s+400\s+44\s+5\.0s {2}█+░+ {2}50%/);
    expect(f).toMatch(/77b0d4aa {2}SIMPLE\s+1\s+64\s+—\s+5\.0s {2}█░+ {3}1%/);
    expect(f).toMatch(/Totals\s+0 completed {2}0 failed {2}201 tokens/);
    expect(f).toContain("task 3f2a9c1e COMPLEX started (max 400 tokens)");
    expect(f).toMatch(/ q Quit {2}p Pause\s+log data\/agent-gpu-box\.log/);
  });

  it("totals after tasks ended, coloured outcomes listed only when they happened", () => {
    const a = registered();
    a.state.taskStarted({ taskId: "aaaaaaaa-1", difficulty: "SIMPLE", maxTokens: 10 });
    for (let i = 0; i < 10; i++) a.state.taskToken("aaaaaaaa-1");
    a.state.taskEnded("aaaaaaaa-1", "completed");
    a.state.taskRefused("bbbbbbbb-2", "the node is at capacity");
    const f = frame(a.state, 2_000);
    expect(f).toMatch(/Totals\s+1 completed {2}0 failed {2}1 refused {2}10 tokens/);
    expect(f).toContain("idle · waiting for the coordinator to assign a task");
    expect(f).toContain("task aaaaaaaa completed: 10 tokens in 0.0 s");
  });

  it("reconnecting in N s, with the last error", () => {
    const a = registered();
    a.state.reconnecting(4_000, "connect ECONNREFUSED 127.0.0.1:8080");
    a.at(1_200);
    const f = frame(a.state, 1_200);
    expect(f).toMatch(/State\s+◌ reconnecting in 3 s · connect ECONNREFUSED 127\.0\.0\.1:8080/);
    expect(f).toContain("not connected · tasks arrive once the coordinator has registered the node");
    expect(f).toContain("connection lost: connect ECONNREFUSED 127.0.0.1:8080; retry in 4.0 s");
  });

  it("refused by the coordinator", () => {
    const a = started();
    a.state.refused("unknown or revoked account key (IRIS_ACCOUNT_KEY)");
    const f = frame(a.state, 0);
    expect(f).toMatch(/State\s+✖ refused · unknown or revoked account key \(IRIS_ACCOUNT_KEY\)/);
    expect(f).toContain("refused by the coordinator: unknown or revoked account key");
  });

  it("stopped on a certificate fault: what is wrong, in the state line and the events", () => {
    const a = started();
    const why =
      "the coordinator's certificate (CN=127.0.0.1, issued by CN=Iris Test CA) expired on 2020-01-02T00:00:00.000Z " +
      "(CERT_HAS_EXPIRED)";
    a.state.tlsFailed(why);
    const f = frame(a.state, 0);
    expect(f).toMatch(/State\s+✖ TLS · the coordinator's certificate/);
    expect(f).toContain("TLS: the coordinator's certificate");
  });

  it("paused: the badge, the table says why it is empty, p resumes", () => {
    const a = registered();
    a.state.setPaused(true);
    const f = frame(a.state, 0);
    expect(f).toMatch(/State\s+PAUSED {2}● registered/);
    expect(f).toContain("paused · the coordinator sends this node no new tasks (p resumes)");
    expect(f).toContain(" q Quit  p Resume");
    expect(f).toContain("paused: taking no new tasks");
  });

  it("quitting: the countdown to hand back the running tasks, q hands back now", () => {
    const a = registered();
    a.state.taskStarted({ taskId: "3f2a9c1e-0000-4000-8000-000000000001", difficulty: "ADVANCED", maxTokens: 1000 });
    a.state.setPaused(true);
    a.state.quitting(T0 + 30_000);
    const f = frame(a.state, 3_400);
    expect(f).toMatch(/State\s+QUITTING: 1 task running, hand back in 27 s {2}● registered/);
    expect(f).toContain("3f2a9c1e  ADVANCED");
    expect(f).toContain(" q Hand back now");
    expect(f).not.toContain("p Pause");
  });

  it("stopped", () => {
    const a = registered();
    a.state.stopped();
    expect(frame(a.state, 0)).toMatch(/State\s+■ stopped/);
  });
});

describe("AgentScreen layout", () => {
  function lines(f: string) {
    return f.split("\n");
  }

  it("fits 80x24 exactly, the key bar on the last line, the log cut to what fits", () => {
    const a = registered();
    a.state.taskStarted({ taskId: "3f2a9c1e-0000-4000-8000-000000000001", difficulty: "SIMPLE", maxTokens: 100 });
    for (let i = 0; i < 40; i++) a.state.event("info", `event number ${i}`);
    const f = frame(a.state, 1_000, 80, 24);
    expect(lines(f)).toHaveLength(24);
    for (const line of lines(f)) expect([...line].length).toBeLessThanOrEqual(80);
    expect(lines(f)[23]).toMatch(/^ q Quit {2}p Pause/);
    expect(f).toContain("event number 39");
    expect(f).not.toContain("event number 20");
    expect(f).toMatch(/Events \(last \d+ of 42\)/);
  });

  it("on a narrow screen drops the max and the bar but keeps the percentage", () => {
    const a = registered();
    a.state.taskStarted({ taskId: "3f2a9c1e-0000-4000-8000-000000000001", difficulty: "SIMPLE", maxTokens: 100 });
    for (let i = 0; i < 25; i++) a.state.taskToken("3f2a9c1e-0000-4000-8000-000000000001");
    const f = frame(a.state, 1_000, 56, 24);
    for (const line of lines(f)) expect([...line].length).toBeLessThanOrEqual(56);
    expect(f).toMatch(/TASK\s+DIFF\s+TOKENS\s+TOK\/S\s+ELAPSED\s+DONE/);
    expect(f).not.toContain("MAX");
    expect(f).not.toContain("█");
    expect(f).toMatch(/3f2a9c1e {2}SIMPLE\s+25 .*25%/);
    expect(f).toMatch(/GPU0\s+NVIDIA GeFo… VRAM\[\|+ +12\.3G\/24\.0G\]$/m); // one meter with room for its label
  });

  it("on a short screen hides the log, then spacing, but keeps the tasks and the key bar", () => {
    const a = registered();
    for (let i = 0; i < 3; i++)
      a.state.taskStarted({ taskId: `${i}0000000-task`, difficulty: "SIMPLE", maxTokens: 10 });
    const f = frame(a.state, 0, 80, 12);
    expect(lines(f)).toHaveLength(12);
    expect(f).not.toContain("Events");
    expect(f).toContain("00000000");
    expect(f).toContain("20000000");
    expect(lines(f)[11]).toMatch(/^ q Quit/);
  });

  it("shows +N more when tasks outnumber the rows", () => {
    const a = registered();
    for (let i = 0; i < 6; i++)
      a.state.taskStarted({ taskId: `${i}0000000-task`, difficulty: "SIMPLE", maxTokens: 10 });
    const f = frame(a.state, 0, 80, 12);
    expect(f).toContain("+4 more");
    expect(lines(f)).toHaveLength(12);
  });
});

describe("AgentApp", () => {
  const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

  it("p toggles pause, q quits, Ctrl+C quits like q", async () => {
    const { state } = registered();
    const calls: string[] = [];
    const app = render(
      <AgentApp state={state} actions={{ togglePause: () => calls.push("pause"), quit: () => calls.push("quit") }} />,
    );
    await tick();
    app.stdin.write("p");
    app.stdin.write("x"); // other keys do nothing
    app.stdin.write("q");
    app.stdin.write("\u0003");
    await tick();
    expect(calls).toEqual(["pause", "quit", "quit"]);
  });

  it("redraws when the state notifies", async () => {
    const state = new AgentState(
      {
        version: "0.1.0",
        nodeId: "n1",
        accountKey: "1111222233334444",
        coordinatorUrl: "http://c",
        backend: "embedded",
        maxConcurrentTasks: 1,
      },
      { intervalMs: 10 },
    );
    const app = render(<AgentApp state={state} actions={{ togglePause() {}, quit() {} }} />);
    await tick();
    expect(app.lastFrame()).toContain("◌ starting");
    state.registered({ tier: "BASIC", tierReason: "0.1M F32 counts as 0B (< 7B) → BASIC", reputation: 100 });
    // the redraw follows the state's next notification (every 10 ms here), whenever a loaded machine runs it
    await vi.waitFor(
      () =>
        expect(stripVTControlCharacters(app.lastFrame() ?? "")).toMatch(
          /● registered for \d+\.\ds · reputation 100\.0/,
        ),
      { timeout: 5_000 },
    );
  });
});
