// The README's "Run a small network on one machine" as a newcomer runs it: scripts/walkthrough.sh starts the
// coordinator with scripts/start.sh, makes a key, runs an agent on the generated tiny model and asks twice with the
// key; and the script's commands are the README's, so the walkthrough cannot drift from what is tested.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { root } from "./support/cli-process.ts";

/** README commands the script runs differently, and why. */
const doneDifferently = new Map([
  ["NODE_ID=my-gpu npm run agent", "needs LM Studio running"],
  ['export IRIS_ACCOUNT_KEY="1234 5678 9012 3456"', "the script exports the key `bin/iris account generate` printed"],
]);
/** What the script has in place of the README's fixed port and file: its own, so that runs never collide. */
const substitutions: [string, string][] = [
  ["http://127.0.0.1:8080", "http://127.0.0.1:$PORT"],
  ["/tmp/tiny.gguf", '"$WORK/tiny.gguf"'],
];

/** Shell text as one command a line: continuations joined, comments and blank lines dropped, spaces collapsed. */
function commands(shell: string): string[] {
  return shell
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((line) =>
      line
        .replace(/\s+#.*$/, "")
        .replace(/\s+/g, " ")
        .trim(),
    )
    .filter((line) => line && !line.startsWith("#"));
}

function readmeWalkthrough(): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Run a small network on one machine"));
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error("the README has no walkthrough block");
  return block[1]!;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once("error", reject);
  });
}

describe("the README's walkthrough", () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    // the script's trap stops the coordinator and the agent it started
    if (child && child.exitCode === null) child.kill("SIGTERM");
  });

  it("is what scripts/walkthrough.sh runs, command for command", () => {
    const script = commands(readFileSync(join(root, "scripts/walkthrough.sh"), "utf8")).join("\n");
    const readme = commands(readmeWalkthrough());
    expect(readme.length).toBeGreaterThanOrEqual(8);
    const missing = readme
      .filter((command) => !doneDifferently.has(command))
      .filter(
        (command) => !script.includes(substitutions.reduce((text, [from, to]) => text.replaceAll(from, to), command)),
      );
    expect(missing).toEqual([]);
    // every exception is still in the README (a stale one would hide nothing, but mislead)
    for (const command of doneDifferently.keys()) expect(readme).toContain(command);
  });

  it("runs end to end: start.sh prints the URLs, the tiny model's agent registers, both asks with the key are " +
    "answered", async () => {
    const port = await freePort();
    const env = { ...process.env, PORT: String(port) };
    child = spawn("bash", ["scripts/walkthrough.sh"], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => child!.once("close", resolve));
    expect(code, output).toBe(0);
    expect(output).toContain(
      `iris coordinator: listening on 127.0.0.1:${port}; open http://127.0.0.1:${port}/chat and ` +
        `http://127.0.0.1:${port}/dashboard`,
    );
    expect(output).toContain('"nodeId": "tiny"');
    expect(output).toContain("data: [DONE]");
    expect(output).not.toMatch(/rate_limit_error|resource_exhausted/);
    expect(output).toContain("walkthrough: every step answered");
  }, 240_000);
});
