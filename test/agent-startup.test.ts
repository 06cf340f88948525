// The real agent's start-up as an operator sees it: a wrong LOG_LEVEL named (exit 2, not a crash), a failure named
// by its step (the key file is not "the backend"), and log lines that say tiers by name.
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startAgent, startAgentNetwork, type AgentNetwork } from "./support/agent-process.ts";

const unreachable = {
  COORDINATOR_URL: "http://127.0.0.1:1",
  IRIS_ACCOUNT_KEY: "1234 5678 9012 3456",
  NODE_ID: "startup-test",
};

describe("iris-agent start-up", () => {
  let network: AgentNetwork | undefined;
  afterAll(async () => {
    await network?.close();
  });

  it("exits 2 naming LOG_LEVEL when it is not a level, instead of crashing", async () => {
    const agent = startAgent({ ...unreachable, IRIS_BACKEND: "lmstudio", LOG_LEVEL: "loud" });
    expect(await agent.exited).toBe(2);
    expect(agent.stderr()).toBe(
      "iris-agent: invalid configuration:\n  LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent " +
        '(got "loud")\n',
    );
  });

  it("names the key file when the key file is what cannot be used, before loading any model", async () => {
    const dir = mkdtempSync(join(tmpdir(), "iris-agent-startup-"));
    const keyPath = join(dir, "node.key");
    writeFileSync(keyPath, "not a key");
    chmodSync(keyPath, 0o644); // readable by others: refused
    // a backend that is not there either: the key file is checked first, so its failure is the one reported
    const agent = startAgent({
      ...unreachable,
      IRIS_BACKEND: "lmstudio",
      BACKEND_URL: "http://127.0.0.1:1/v1",
      NODE_KEY_PATH: keyPath,
    });
    expect(await agent.exited).toBe(1);
    expect(agent.stderr()).toMatch(
      new RegExp(`^iris-agent: the node key file ${keyPath} \\(NODE_KEY_PATH\\) is not usable: .+\\n$`),
    );
    expect(agent.stderr()).not.toContain("backend");
  });

  it("still says the backend is not usable when it is the backend", async () => {
    const dir = mkdtempSync(join(tmpdir(), "iris-agent-startup-"));
    const agent = startAgent({
      ...unreachable,
      IRIS_BACKEND: "lmstudio",
      BACKEND_URL: "http://127.0.0.1:1/v1",
      NODE_KEY_PATH: join(dir, "node.key"),
    });
    expect(await agent.exited).toBe(1);
    expect(agent.stderr()).toMatch(/^iris-agent: the lmstudio backend is not usable: /);
  });

  it("logs the tier it registered with by name (BASIC), not as the enum's number", async () => {
    network = await startAgentNetwork();
    const agent = await network.agent("tiny-startup");
    const registered = agent.logs.find((line) => line.msg === "registered with the coordinator")!;
    expect(registered.tier).toBe("BASIC");
    // the tiny model's reason, readable: a size with a unit, a speed to a tenth
    expect(registered.reason).toMatch(
      /^\d+(\.\d)?K F32 counts as \d+(\.\d)?K \(< 7B\); \d+(\.\d)? tok\/s \(> 30\) → BASIC$/,
    );
  }, 60_000);
});
