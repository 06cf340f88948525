// The assembled chain with a real NodeRegistry: the classify assign lands in an idle node's stream outbox, the
// node's result decides; OpenRouter (a local stand-in) goes first when a key is set.
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Channel } from "../../../common/channel.ts";
import { generateKeyPairSync } from "node:crypto";
import { deriveSessionKeys, openText, publicKeyBytes, type SessionKeys } from "../../../common/crypto/envelope.ts";
import { Difficulty } from "../../../gen/iris/v1/common_pb.ts";
import type { ConnectResponse } from "../../../gen/iris/v1/node_pb.ts";
import { startOpenRouterStandin, type OpenRouterStandin } from "../../../test/support/openrouter-standin.ts";
import { LiveNode, NodeRegistry, type NodeCapabilities } from "../../nodes/registry.ts";
import { createCoordinatorClassifier, type ClassifierChainConfig } from "./links.ts";

const capabilities: NodeCapabilities = {
  modelName: "qwen2.5-14b-instruct",
  parameterCount: 14e9,
  quantization: "Q4_K_M",
  contextLength: 8192,
  tokensPerSecond: 25,
  maxConcurrentTasks: 1,
  gpus: [],
  backend: "lmstudio",
  agentVersion: "test",
};
const messages = [{ role: "user", content: "Compare PostgreSQL and MySQL for a small shop." }];
const base: ClassifierChainConfig = {
  openRouter: { url: "http://127.0.0.1:9/api/v1", model: "m" },
  openRouterBudgetMs: 1_000,
  nodeBudgetMs: 1_000,
  cacheTtlMs: 60_000,
  cacheMaxEntries: 100,
};

/** Both sides' keys for one connection, agreed as the NodeService handshake does (X25519 + HKDF). */
function sessionKeys(nodeId: string): { coordinator: SessionKeys; node: SessionKeys } {
  const coordinator = generateKeyPairSync("x25519");
  const node = generateKeyPairSync("x25519");
  const context = { coordinatorPublicKey: publicKeyBytes(coordinator.publicKey), nodePublicKey: publicKeyBytes(node.publicKey), nodeId, sessionId: "session" };
  return {
    coordinator: deriveSessionKeys(coordinator.privateKey, context.nodePublicKey, context),
    node: deriveSessionKeys(node.privateKey, context.coordinatorPublicKey, context),
  };
}

function connect(registry: NodeRegistry, id: string): { outbox: Channel<ConnectResponse>; nodeKeys: SessionKeys } {
  const outbox = new Channel<ConnectResponse>();
  const keys = sessionKeys(id);
  registry.add(new LiveNode(id, "account", "session", "MID", "test", capabilities, 100, keys.coordinator, outbox, Date.now()));
  return { outbox, nodeKeys: keys.node };
}

let standin: OpenRouterStandin | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

describe("createCoordinatorClassifier", () => {
  it("without a key asks an idle node over its stream and takes its answer", async () => {
    const registry = new NodeRegistry();
    const { outbox, nodeKeys } = connect(registry, "mid-1");
    const { chain, nodeLink } = createCoordinatorClassifier(base, registry, pino({ level: "silent" }));
    const answer = chain.classify({ messages });
    const sent = await outbox.next();
    expect(sent.done).toBe(false);
    const message = (sent.value as ConnectResponse).message;
    expect(message.case).toBe("classifyAssign");
    if (message.case !== "classifyAssign") return;
    // the prompt travels sealed for that node: only its keys open it, and only as this classification's
    const { classifyId, sealedPrompt } = message.value;
    expect(Buffer.from(sealedPrompt!.ciphertext).toString("utf8")).not.toContain("PostgreSQL");
    expect(openText(nodeKeys.toNode, sealedPrompt!, { taskId: classifyId, sequence: 0, kind: "classify" })).toContain(messages[0]!.content);
    expect(() => openText(nodeKeys.toNode, sealedPrompt!, { taskId: classifyId, sequence: 0, kind: "assign" })).toThrow();
    expect(nodeLink!.resolveClassifyResult(message.value.classifyId, Difficulty.COMPLEX, "mid-1")).toBe(true);
    expect(await answer).toEqual({ difficulty: "COMPLEX", classifier: "node" });
    expect(Object.keys(chain.stats().links)).toEqual(["node", "local"]);
  });

  it("a node that lets the budget pass rests: later requests do not wait for it", async () => {
    const registry = new NodeRegistry();
    const { outbox } = connect(registry, "silent");
    const { chain } = createCoordinatorClassifier({ ...base, nodeBudgetMs: 150 }, registry, pino({ level: "silent" }));
    const first = performance.now();
    expect(await chain.classify({ messages })).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    expect(performance.now() - first).toBeGreaterThanOrEqual(140); // the first request waited the budget
    expect((await outbox.next()).done).toBe(false); // the assign it waited for
    const other = [{ role: "user", content: "Compare Redis and Memcached for sessions." }];
    expect(await chain.classify({ messages: other })).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    outbox.close();
    expect(await outbox.next()).toMatchObject({ done: true }); // the resting node was not asked again
    expect(chain.stats().links.node).toMatchObject({ timedOut: 1, failed: 1 });
  });

  it("with no idle node the rules decide at once", async () => {
    const registry = new NodeRegistry();
    const { chain } = createCoordinatorClassifier(base, registry, pino({ level: "silent" }));
    const started = performance.now();
    expect(await chain.classify({ messages })).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    expect(performance.now() - started).toBeLessThan(100);
  });

  it("with a key asks OpenRouter first", async () => {
    standin = await startOpenRouterStandin({ content: '{"difficulty":"SIMPLE"}' });
    const registry = new NodeRegistry();
    const { outbox } = connect(registry, "mid-1");
    const config = { ...base, openRouter: { apiKey: "sk-test", url: standin.url, model: "openai/gpt-4o-mini" } };
    const { chain } = createCoordinatorClassifier(config, registry, pino({ level: "silent" }));
    expect(await chain.classify({ messages })).toEqual({ difficulty: "SIMPLE", classifier: "openrouter" });
    expect(Object.keys(chain.stats().links)).toEqual(["openrouter", "node", "local"]);
    outbox.close();
    expect(await outbox.next()).toMatchObject({ done: true }); // the node was never asked
  });
});
