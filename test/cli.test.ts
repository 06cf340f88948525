// The `iris` CLI as a real process against a real coordinator and a scripted node: streaming, JSON lines, stdin,
// Ctrl-C, accounts and the saved login, tables, exit codes, and the interactive session on a pseudo-terminal.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { cleanEnv, root, runCli, type CliOptions } from "./support/cli-process.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { startScriptedNode, type ScriptedNode } from "./support/scripted-node.ts";

const NODE_ID = "cli-node-1";
const LONG_ANSWER = 77; // --max-tokens that makes the node answer slowly for a long time
const limits = { RATE_LIMIT_ANONYMOUS_PER_DAY: "1000000", RATE_LIMIT_ACCOUNT_KEY_PER_DAY: "1000000" };
const hasScript = (() => {
  try {
    execFileSync("script", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("iris CLI", () => {
  let coordinator: TestCoordinator;
  let node: ScriptedNode;
  let configHome: string;
  let env: Record<string, string>;
  const iris = (args: string[], options: Partial<CliOptions> = {}) =>
    runCli(args, { env, ...options, ...(options.env ? { env: { ...env, ...options.env } } : {}) });

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ JWT_SECRET: "cli-test-secret-0123456789abcdefghij", ...limits });
    const accountKey = await newAccountKey(coordinator.url);
    node = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId: NODE_ID,
      script: (assign) =>
        assign.maxTokens === LONG_ANSWER
          ? { tokens: Array.from({ length: 100 }, (_, i) => ` w${i}`), delayMs: 100 }
          : { tokens: ["Hello", ",", " world", "!"], delayMs: 120 },
    });
    await node.registered;
    configHome = mkdtempSync(join(tmpdir(), "iris-cli-config-"));
    env = { IRIS_URL: coordinator.url, XDG_CONFIG_HOME: configHome };
  });
  afterAll(async () => {
    node?.kill();
    await coordinator?.close();
  });

  it("streams the answer to stdout as it arrives, with a footer on stderr, and exits 0", async () => {
    const run = await iris(["chat", "hi"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("Hello, world!\n");
    // four tokens 120 ms apart: more than one read, the first well before the process ended
    expect(run.chunks.length).toBeGreaterThan(1);
    expect(run.exitedAt - run.chunks[0]!.at).toBeGreaterThan(200);
    expect(run.stderr).toMatch(
      /\[SIMPLE · tier MID · node cli-node-1 · model scripted-8B-Q4_K_M · ttft \d+ ms · 4 tokens · [\d.]+ tokens\/s\]/,
    );
    expect((await iris(["chat", "--quiet", "hi"])).stderr).toBe("");
  });

  it("asks for a division mode with --mode: consensus over --nodes nodes, the verdict in the footer", async () => {
    const accountKey = await newAccountKey(coordinator.url);
    const peers = ["cli-node-2", "cli-node-3"].map((nodeId) =>
      startScriptedNode({
        baseUrl: coordinator.url,
        accountKey,
        nodeId,
        script: () => ({ tokens: ["Hello", ",", " world", "!"] }),
      }),
    );
    try {
      await Promise.all(peers.map((peer) => peer.registered));
      const run = await iris(["chat", "--mode", "consensus", "--nodes", "3", "hi"]);
      expect(run.code).toBe(0);
      expect(run.stdout).toBe("Hello, world!\n");
      // two agreeing copies are a majority of three: the answer may come before the third copy ends
      expect(run.stderr).toMatch(
        /^\[consensus, verified · SIMPLE · tier MID · node cli-node-\d → cli-node-\d( → cli-node-\d)? · /,
      );
      const json = await iris(["chat", "--json", "--mode", "auto", "hi"]);
      const accepted = json.stdout
        .split("\n")
        .map((line) => (line ? (JSON.parse(line) as Record<string, any>) : {}))
        .find((e) => e.type === "accepted");
      expect(accepted?.accepted.divisionMode).toBe("DIVISION_MODE_SINGLE"); // auto: a short question fits one node
    } finally {
      for (const peer of peers) peer.kill();
    }
  });

  it("prints one JSON object per event with --json", async () => {
    const run = await iris(["chat", "hi", "--json"]);
    expect(run.code).toBe(0);
    const events = run.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, any>);
    expect(events.map((e) => e.type)).toEqual(["accepted", "token", "token", "token", "token", "done"]);
    expect(events[0]!.accepted).toMatchObject({ nodeId: NODE_ID, tier: "TIER_MID", difficulty: "DIFFICULTY_SIMPLE" });
    expect(
      events
        .slice(1, 5)
        .map((e) => e.text)
        .join(""),
    ).toBe("Hello, world!");
    expect(events[5]!.done).toMatchObject({ nodeId: NODE_ID, finishReason: "stop", usage: { completionTokens: 4 } });
  });

  it("reads the prompt from a piped stdin, or appends piped text to the prompt as context", async () => {
    const piped = await iris(["chat", "-q"], { input: "What is the capital of France?\n" });
    expect(piped.code).toBe(0);
    expect(piped.stdout).toBe("Hello, world!\n");
    expect(node.payloads.at(-1)!.messages.map((m) => m.content)).toEqual(["What is the capital of France?"]);

    const both = await iris(["chat", "-q", "Translate this to French:"], { input: "good morning\n" });
    expect(both.code).toBe(0);
    expect(node.payloads.at(-1)!.messages.map((m) => m.content)).toEqual(["Translate this to French:\n\ngood morning"]);

    const none = await iris(["chat"], { input: "" });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("iris: no prompt");
  });

  it("cancels the call on Ctrl-C: the node is told to stop and the CLI exits 130", async () => {
    const cancelsBefore = node.cancels.length;
    let signalled = false;
    const run = await iris(["chat", "--max-tokens", String(LONG_ANSWER), "hi"], {
      onStdout: (_text, child) => {
        if (!signalled) child.kill("SIGINT");
        signalled = true;
      },
    });
    expect(run.code).toBe(130);
    expect(run.stdout.trim().split(" ").length).toBeLessThan(50);
    await expect.poll(() => node.cancels.length, { timeout: 5000 }).toBe(cancelsBefore + 1);
    expect(node.cancels.at(-1)!.taskId).toBe(node.assigns.at(-1)!.taskId);
  });

  it("generates an account key and verifies it, masking it in the verdict", async () => {
    const generated = await iris(["account", "generate"]);
    expect(generated.code).toBe(0);
    const key = generated.stdout.trim();
    expect(key).toMatch(/^\d{4} \d{4} \d{4} \d{4}$/);
    expect(generated.stderr).toContain("shown once");

    const verified = await iris(["account", "verify", key]);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toBe(`**** **** **** ${key.slice(-4)} is a valid account key\n`);
    expect((await iris(["account", "verify", "--json", key.replaceAll(" ", "")])).stdout).toBe('{"valid":true}\n');

    const unknown = await iris(["account", "verify", "0000 0000 0000 0001"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toContain("is not a known account key");
    const malformed = await iris(["account", "verify", "1234-5678"]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).not.toContain("1234-5678");
  }, 60_000);

  it("registers and logs in, saving the token with mode 0600 and sending it with later commands", async () => {
    const registered = await iris(["register", "--email", "cli@example.com"], {
      env: { IRIS_PASSWORD: "correct horse battery" },
    });
    expect(registered.code, registered.stderr).toBe(0);
    const path = join(configHome, "iris", "credentials.json");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(configHome, "iris")).mode & 0o777).toBe(0o700);
    const saved = JSON.parse(readFileSync(path, "utf8")) as { url: string; token: string; expiresAt: string };
    expect(saved.url).toBe(coordinator.url);
    expect(Date.parse(saved.expiresAt)).toBeGreaterThan(Date.now());
    expect(registered.stdout + registered.stderr).not.toContain(saved.token);

    // the password piped on stdin, as a script would
    const loggedIn = await iris(["login", "--email", "cli@example.com"], { input: "correct horse battery\n" });
    expect(loggedIn.code, loggedIn.stderr).toBe(0);
    expect(loggedIn.stdout).toContain("signed in as cli@example.com");
    const token = (JSON.parse(readFileSync(path, "utf8")) as { token: string }).token;
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const wrong = await iris(["login", "--email", "cli@example.com"], { input: "not the password\n" });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("iris: the coordinator refused the credentials");

    const stats = await iris(["stats", "--json"]);
    expect(stats.code, stats.stderr).toBe(0);
    expect(JSON.parse(stats.stdout).stats).toMatchObject({ nodesOnline: 1 });

    // a spoiled saved token is refused: proof that commands send it
    writeFileSync(path, JSON.stringify({ ...saved, token: `${token.slice(0, -4)}AAAA` }), { mode: 0o600 });
    const refused = await iris(["stats"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("the saved login may be stale");
    expect((await iris(["logout"])).code).toBe(0);
    expect((await iris(["stats"])).code).toBe(0);
  }, 90_000);

  it("prints nodes, tasks, leaderboard and reputation as tables, and as protobuf JSON with --json", async () => {
    const nodes = await iris(["nodes"]);
    expect(nodes.code).toBe(0);
    expect(nodes.stdout).toMatch(/^NODE +STATUS +TIER +MODEL/);
    expect(nodes.stdout).toMatch(/cli-node-1 +online +MID +scripted-8B-Q4_K_M +8B +Q4_K_M/);
    const nodesJson = JSON.parse((await iris(["nodes", "--json"])).stdout) as { nodes: Record<string, unknown>[] };
    expect(nodesJson.nodes[0]).toMatchObject({
      nodeId: NODE_ID,
      tier: "TIER_MID",
      online: true,
      parameterCount: "8000000000",
    });

    const tasks = await iris(["tasks", "--limit", "5"]);
    expect(tasks.code).toBe(0);
    expect(tasks.stdout).toMatch(/^TASK +STATUS +DIFFICULTY/);
    expect(tasks.stdout).toMatch(/COMPLETED +SIMPLE +MID +cli-node-1/);
    const tasksJson = JSON.parse((await iris(["tasks", "--json", "--node", NODE_ID])).stdout) as {
      tasks: { status: string }[];
    };
    expect(tasksJson.tasks.some((t) => t.status === "TASK_STATUS_COMPLETED")).toBe(true);

    const leaderboard = await iris(["leaderboard"]);
    expect(leaderboard.code).toBe(0);
    expect(leaderboard.stdout).toMatch(/^RANK +NODE +REPUTATION/);
    expect(leaderboard.stdout).toMatch(/1 +cli-node-1 +\d+ +MID/);

    await coordinator.reputation.settled();
    const reputation = await iris(["reputation", NODE_ID]);
    expect(reputation.code).toBe(0);
    expect(reputation.stdout).toMatch(/^cli-node-1: reputation \d+, tier MID, online/);
    expect(reputation.stdout).toMatch(/task_completed +\+10/);
    const missing = await iris(["reputation", "no-such-node"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("iris: not found: node no-such-node is not registered\n");
  }, 60_000);

  it("exits 2 with usage on stderr for a bad flag, a bad value or an unknown command; --help exits 0", async () => {
    const badFlag = await iris(["chat", "--bogus", "hi"]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain("iris: unknown option '--bogus'");
    expect(badFlag.stderr).toContain("Usage: iris chat|ask [options] [prompt...]");
    expect(badFlag.stdout).toBe("");

    const badValue = await iris(["chat", "--max-tokens", "many", "hi"]);
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toContain("--max-tokens");

    const badMode = await iris(["chat", "--mode", "majority", "hi"]);
    expect(badMode.code).toBe(2);
    expect(badMode.stderr).toContain("--mode");
    expect(badMode.stderr).toContain("single, subtasks, consensus, context, auto");
    const nodesAlone = await iris(["chat", "--nodes", "3", "hi"]);
    expect(nodesAlone.code).toBe(2);
    expect(nodesAlone.stderr).toContain("--nodes needs --mode consensus");

    const unknown = await iris(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("iris: unknown command 'frobnicate'");

    for (const command of [[], ["chat"], ["account", "verify"], ["login"], ["reputation"]]) {
      const help = await iris([...command, "--help"]);
      expect(help.code, command.join(" ")).toBe(0);
      expect(help.stdout).toContain(`Usage: iris${command.length ? ` ${command.join(" ")}` : ""}`);
    }
    // the bin shim runs the same program from any directory
    expect(
      execFileSync(join(root, "bin", "iris"), ["--version"], { cwd: tmpdir(), env: cleanEnv({}) }).toString(),
    ).toMatch(/^\d+\.\d+\.\d+\n$/);
  }, 90_000);

  it("exits 1 with a readable message when the coordinator cannot be reached", async () => {
    const run = await iris(["stats"], { env: { IRIS_URL: "http://127.0.0.1:1" } });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^iris: cannot reach the coordinator at http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
  });

  it.skipIf(!hasScript)("shows the queue position on a terminal while the node is busy", async () => {
    // the node has one slot: a long answer holds it until the CLI shows that it waits, then frees it
    const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    const holder = new AbortController();
    const busy = (async () => {
      const request = { params: { messages: [{ role: Role.USER, content: "hi" }], maxTokens: LONG_ANSWER } };
      for await (const _ of inference.chat(request, { signal: holder.signal }));
    })().catch(() => {});
    await expect.poll(() => node.assigns.at(-1)?.maxTokens).toBe(LONG_ANSWER);
    const output = await onTerminal(["chat", "hi"], [], (text) => {
      if (text.includes("queued: position 1")) holder.abort();
    });
    await busy;
    expect(output.text).toContain("queued: position 1");
    expect(output.text).toContain("Hello, world!");
    expect(output.code).toBe(0);
  });

  it.skipIf(!hasScript)("keeps the conversation in an interactive session until /exit", async () => {
    const output = await onTerminal(["chat", "-q"], ["What is the capital of France?", "And of Italy?", "/exit"]);
    expect(output.code).toBe(0);
    expect(output.text.match(/Hello, world!/g)).toHaveLength(2);
    expect(node.payloads.at(-1)!.messages.map((m) => [m.role, m.content])).toEqual([
      [Role.USER, "What is the capital of France?"],
      [Role.ASSISTANT, "Hello, world!"],
      [Role.USER, "And of Italy?"],
    ]);
  });

  /** Runs the CLI on a pseudo-terminal (util-linux `script`), typing each line after the previous answer. */
  function onTerminal(
    args: string[],
    lines: string[],
    onText?: (text: string) => void,
  ): Promise<{ text: string; code: number | null }> {
    const command = [process.execPath, "--import", "tsx", "client/cli.ts", ...args].map((a) => `'${a}'`).join(" ");
    const child = spawn("script", ["-qfec", command, "/dev/null"], {
      cwd: root,
      env: cleanEnv(env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let text = "";
    let prompts = 0;
    child.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      onText?.(text);
      // each ">>> " is the session asking for the next line
      const seen = text.split(">>> ").length - 1;
      while (prompts < seen && prompts < lines.length) child.stdin.write(`${lines[prompts++]}\r`);
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`the session did not end; output: ${text}`));
      }, 20_000);
      child.once("close", (code) => {
        clearTimeout(timer);
        child.stdin.destroy();
        resolve({ text, code });
      });
    });
  }
});

describe("iris CLI without nodes", () => {
  let coordinator: TestCoordinator;
  beforeAll(async () => {
    coordinator = await startTestCoordinator({ QUEUE_MAX_WAIT_MS: "300", ...limits });
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  it("exits 1 with a readable message when no node can answer", async () => {
    const env = { IRIS_URL: coordinator.url, XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "iris-cli-config-")) };
    const run = await runCli(["chat", "hi"], { env });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(/^iris: no node can answer right now: no node that serves SIMPLE requests .* is online/);

    const json = await runCli(["chat", "--json", "hi"], { env });
    expect(json.code).toBe(1);
    const events = json.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; code?: string });
    // no node online: refused at once, never queued
    expect(events).toEqual([expect.objectContaining({ type: "error", code: "unavailable" })]);
  });
});
