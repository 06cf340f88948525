// Every example in the README and docs/ runs, and prints what the page says it prints (the rules:
// docs/development/tests.md, "Every example runs"): a real coordinator with one real agent, my-gpu, on the tiny
// model — the README walkthrough's network — and each `sh` block run with bash, each `ts` block with tsx.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeIrisClient } from "../client/sdk-node.ts";
import { startAgentNetwork, type AgentNetwork } from "./support/agent-process.ts";
import { root } from "./support/cli-process.ts";
import { describeBlock, docExamples, expectations, type DocBlock } from "./support/doc-blocks.ts";

const BLOCK_TIMEOUT_MS = 90_000;

/** Variables a developer's shell or the test runner may carry that would change what an example does. */
const dropped = new RegExp(
  "^(VITEST|IRIS_|NODE_ID$|NODE_KEY_PATH$|NODE_OPTIONS$|DATABASE_URL$|COORDINATOR_|BACKEND_" +
    "|LMSTUDIO_URL$|PORT$|HOST$|DATA_DIR$|LOG_LEVEL$|TLS_)",
);

function onPath(tool: string): boolean {
  return spawnSync("bash", ["-c", `command -v ${tool}`]).status === 0;
}

/** The page's address and scratch paths made this run's. */
function localize(text: string, port: number, scratch: string): string {
  return text
    .replaceAll("http://127.0.0.1:8080", `http://127.0.0.1:${port}`)
    .replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`)
    .replaceAll("/tmp/", `${scratch}/`);
}

// ANSI colours off: some tools colour their output even into a pipe
const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "");

function run(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      // the whole process group: an example's npm, tsx and node children too
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, BLOCK_TIMEOUT_MS - 5_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      // whatever the example left running in the background goes with it
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // nothing left
      }
      resolve({ code, output: plain(output) });
    });
  });
}

describe("the documentation's examples", () => {
  const examples = docExamples().filter((block) => block.marker.kind !== "not-run");
  let network: AgentNetwork;
  let port = 0;
  let scratch = "";
  let env: NodeJS.ProcessEnv = {};

  beforeAll(async () => {
    network = await startAgentNetwork({
      coordinatorEnv: { JWT_SECRET: "docs-examples-secret-at-least-32-characters", ADMIN_EMAILS: "admin@example.org" },
    });
    await network.agent("my-gpu");
    port = Number(new URL(network.coordinator.url).port);
    scratch = mkdtempSync(join(tmpdir(), "iris-docs-examples-"));
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !dropped.test(name)));
    env = {
      ...inherited,
      IRIS_URL: network.coordinator.url,
      COORDINATOR_URL: network.coordinator.url,
      IRIS_ACCOUNT_KEY: network.accountKey,
      XDG_CONFIG_HOME: join(scratch, "config"),
      DATA_DIR: join(scratch, "data"),
      NODE_KEY_PATH: join(scratch, "node.key"),
      IRIS_LOG_FILE: join(scratch, "agent.log"),
      IRIS_THREADS: "1",
      BENCHMARK_TOKENS: "16",
    };
    // the walkthrough's ask: the network has answered once, so its node has a history to show
    const iris = createNodeIrisClient({ baseUrl: network.coordinator.url, accountKey: network.accountKey });
    for await (const _ of iris.chat("Translate hello to French", { maxTokens: 8 }));
    while (!(await iris.reputation("my-gpu")).some((event) => event.rule === "task_completed")) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }, 120_000);

  afterAll(async () => {
    await network?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it("are there", () => {
    expect(examples.length).toBeGreaterThan(30);
  });

  it.each(examples.map((block) => [describeBlock(block), block] as const))(
    "%s",
    async (_, block: DocBlock) => {
      if (block.marker.kind === "needs") {
        const missing = block.marker.tools.filter((tool) => !onPath(tool));
        if (missing.length > 0) {
          console.log(
            `${describeBlock(block)}: not run, ${missing.join(" and ")} not installed (checked by test/docs.test.ts)`,
          );
          return;
        }
      }
      const code = localize(block.code, port, scratch);
      let cwd = root;
      if (block.marker.kind === "scratch") {
        cwd = mkdtempSync(join(scratch, "block-"));
      }
      let result: { code: number | null; output: string };
      if (block.language === "ts") {
        // a module in an ignored folder of the repository, so that packages resolve; `./` imports are the repository's
        const dir = join(root, "test-results", "docs-examples");
        mkdirSync(dir, { recursive: true });
        const file = join(dir, `${block.file.replaceAll("/", "_")}-${block.line}-${process.pid}.ts`);
        writeFileSync(
          file,
          code.replace(/from "\.\/([^"]+)"/g, (_m, path: string) => `from "${join(root, path)}"`),
        );
        try {
          result = await run(process.execPath, ["--import", "tsx", file], { cwd, env });
        } finally {
          rmSync(file, { force: true });
        }
      } else {
        result = await run("bash", ["-c", `set -eo pipefail\n${code}`], { cwd, env });
      }
      expect(result.code, `${describeBlock(block)} exited with ${result.code}:\n${result.output}`).toBe(0);
      for (const expected of expectations(block).map((text) => localize(text, port, scratch))) {
        expect(result.output, `${describeBlock(block)} should print ${JSON.stringify(expected)}`).toContain(expected);
      }
    },
    BLOCK_TIMEOUT_MS,
  );
});
