// What the real `iris` CLI prints, as a newcomer meets it: `ask` as `chat`, a pipe closed early (`| head`), colour
// on a terminal only, parameter counts with units, and no empty token events in --json.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanEnv, root, runCli, type CliOptions } from "./support/cli-process.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { startScriptedNode, type ScriptedNode } from "./support/scripted-node.ts";

const hasScript = (() => {
  try {
    execFileSync("script", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const LONG = 99; // --max-tokens for which the node streams a long answer
const ESC = "\x1b[";

/**
 * Runs the CLI on a pseudo-terminal (util-linux `script`), so that stdout and stderr are a TTY; both come back mixed.
 */
function onTerminal(args: string[], env: Record<string, string>): Promise<{ text: string; code: number | null }> {
  const command = [process.execPath, "--import", "tsx", "client/cli.ts", ...args].map((a) => `'${a}'`).join(" ");
  const child = spawn("script", ["-qfec", command, "/dev/null"], {
    cwd: root,
    env: cleanEnv(env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let text = "";
  child.stdout.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`iris ${args.join(" ")} did not end on the terminal; output: ${text}`));
    }, 20_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve({ text, code });
    });
  });
}

describe("iris CLI output", () => {
  let coordinator: TestCoordinator;
  const nodes: ScriptedNode[] = [];
  let env: Record<string, string>;
  const iris = (args: string[], options: Partial<CliOptions> = {}) =>
    runCli(args, { env, ...options, ...(options.env ? { env: { ...env, ...options.env } } : {}) });

  beforeAll(async () => {
    coordinator = await startTestCoordinator();
    const accountKey = await newAccountKey(coordinator.url);
    // a node whose answer has chunks without text (as a byte-level tokenizer sends half a character)
    nodes.push(
      startScriptedNode({
        baseUrl: coordinator.url,
        accountKey,
        nodeId: "big-70b",
        modelName: "llama-3.1-70B-Q4_K_M",
        parameterCount: 70e9,
        tokensPerSecond: 40,
        maxConcurrentTasks: 4,
        script: (assign) =>
          assign.maxTokens === LONG
            ? { tokens: Array.from({ length: 2000 }, (_, i) => `word${i} `), delayMs: 2 }
            : { tokens: ["Hello", "", ",", "", " world", "!"] },
      }),
      startScriptedNode({
        baseUrl: coordinator.url,
        accountKey,
        nodeId: "tiny",
        modelName: "Iris Tiny Test Model",
        parameterCount: 139_840,
        quantization: "F32",
        tokensPerSecond: 5,
      }),
    );
    await Promise.all(nodes.map((n) => n.registered));
    env = { IRIS_URL: coordinator.url, XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "iris-cli-config-")) };
  });
  afterAll(async () => {
    for (const n of nodes) n.kill();
    await coordinator?.close();
  });

  it("takes `ask` as another name for `chat`", async () => {
    const run = await iris(["ask", "hi"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe("Hello, world!\n");
    expect((await iris(["--help"])).stdout).toMatch(/chat\|ask /);
  });

  it("emits no token event without text in --json", async () => {
    const run = await iris(["chat", "--json", "hi"]);
    expect(run.code, run.stderr).toBe(0);
    const events = run.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; text?: string });
    const tokens = events.filter((e) => e.type === "token");
    expect(tokens.map((e) => e.text)).toEqual(["Hello", ",", " world", "!"]);
  });

  it("ends quietly with 0 when the reader closes the pipe (`| head -c 100`)", async () => {
    const cli = [
      process.execPath,
      "--import",
      "tsx",
      "client/cli.ts",
      "chat",
      "--max-tokens",
      String(LONG),
      "tell me a story",
    ]
      .map((a) => `'${a}'`)
      .join(" ");
    // asynchronously: the coordinator and the node run in this process
    const child = spawn("bash", ["-c", `${cli} | head -c 100; echo "iris exited with \${PIPESTATUS[0]}" >&2`], {
      cwd: root,
      env: cleanEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    await new Promise((resolve) => child.once("close", resolve));
    expect(stdout).toHaveLength(100);
    // no EPIPE stack trace, no footer for an answer nobody read to its end
    expect(stderr).toBe("iris exited with 0\n");
  });

  it("prints parameter counts with a unit: a tiny model's never reads as more than 70B", async () => {
    const run = await iris(["nodes"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/big-70b +online +PRO +llama-3\.1-70B-Q4_K_M +70B +Q4_K_M/);
    expect(run.stdout).toMatch(/tiny +online +BASIC +Iris Tiny Test Model +140K +F32/);
    expect((await iris(["models"])).stdout).toMatch(/Iris Tiny Test Model +1 +BASIC +140K/);
  });

  it("prints no colour when piped", async () => {
    for (const args of [["chat", "hi"], ["nodes"], ["tasks"]]) {
      const run = await iris(args);
      expect(run.stdout + run.stderr, args.join(" ")).not.toContain(ESC);
    }
  });

  it.skipIf(!hasScript)(
    "colours difficulty and tier on a terminal, and nothing with NO_COLOR",
    async () => {
      const chat = await onTerminal(["chat", "hi"], env);
      expect(chat.code).toBe(0);
      expect(chat.text).toContain(`[${ESC}32mSIMPLE${ESC}39m · ${ESC}35mtier PRO${ESC}39m · node big-70b`);
      const tasks = await onTerminal(["tasks", "--limit", "3"], env);
      expect(tasks.text).toContain(`${ESC}32mSIMPLE${ESC}39m`);
      const table = await onTerminal(["nodes"], env);
      expect(table.text).toMatch(/big-70b +online +\x1b\[35mPRO\x1b\[39m +llama/);
      expect(table.text).toMatch(/tiny +online +\x1b\[34mBASIC\x1b\[39m +Iris Tiny/);

      for (const args of [["chat", "hi"], ["nodes"]]) {
        const plain = await onTerminal(args, { ...env, NO_COLOR: "1" });
        expect(plain.code).toBe(0);
        // the only escapes left are the spinner's line clearing, never a colour
        expect(plain.text).not.toMatch(/\x1b\[3\dm/);
      }
    },
    60_000,
  );
});
