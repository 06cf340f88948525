// The assembled chain with a real NodeRegistry: a classify assign lands in an idle node's stream outbox, as a probe
// until the node has answered one, then as a request's question; OpenRouter (a local stand-in) goes first when a key is
// set.
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Channel } from "../../../common/channel.ts";
import { generateKeyPairSync } from "node:crypto";
import { deriveSessionKeys, openText, publicKeyBytes, type SessionKeys } from "../../../common/crypto/envelope.ts";
import { Difficulty } from "../../../gen/iris/v1/common_pb.ts";
import type { ConnectResponse } from "../../../gen/iris/v1/node_pb.ts";
import { startOpenRouterStandin, type OpenRouterStandin } from "../../../test/support/openrouter-standin.ts";
import { LiveNode, NodeRegistry, type NodeCapabilities } from "../../nodes/registry.ts";
import { clusterNodeOf } from "../../cluster/codec.ts";
import { RemoteNode, type HomeLink, type ToHome } from "../../cluster/remote-node.ts";
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
  const context = {
    coordinatorPublicKey: publicKeyBytes(coordinator.publicKey),
    nodePublicKey: publicKeyBytes(node.publicKey),
    nodeId,
    sessionId: "session",
  };
  return {
    coordinator: deriveSessionKeys(coordinator.privateKey, context.nodePublicKey, context),
    node: deriveSessionKeys(node.privateKey, context.coordinatorPublicKey, context),
  };
}

function connect(registry: NodeRegistry, id: string): { outbox: Channel<ConnectResponse>; nodeKeys: SessionKeys } {
  const outbox = new Channel<ConnectResponse>();
  const keys = sessionKeys(id);
  registry.add(
    new LiveNode(id, "account", "session", "MID", "test", capabilities, 100, keys.coordinator, outbox, Date.now()),
  );
  return { outbox, nodeKeys: keys.node };
}

/** The next message on the node's stream, which must be a classify assign. */
async function nextAssign(outbox: Channel<ConnectResponse>) {
  const sent = await outbox.next();
  const message = (sent.value as ConnectResponse | undefined)?.message;
  if (message?.case !== "classifyAssign") throw new Error(`expected a classify assign, got ${message?.case}`);
  return message.value;
}

let standin: OpenRouterStandin | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

describe("createCoordinatorClassifier", () => {
  it(
    "without a key: the local model answers while an idle node is probed over its stream; once it answered, it " +
      "decides",
    async () => {
      const registry = new NodeRegistry();
      const { outbox, nodeKeys } = connect(registry, "mid-1");
      const { chain, nodeLink } = createCoordinatorClassifier(base, registry, pino({ level: "silent" }));
      // nobody has answered a classify yet: the local model decides this request, the node gets the prompt as a probe
      expect(await chain.classify({ messages })).toEqual({ difficulty: "COMPLEX", classifier: "local" });
      const probe = await nextAssign(outbox);
      // the prompt travels sealed for that node: only its keys open it, and only as this classification's
      const { classifyId, sealedPrompt } = probe;
      expect(Buffer.from(sealedPrompt!.ciphertext).toString("utf8")).not.toContain("PostgreSQL");
      expect(openText(nodeKeys.toNode, sealedPrompt!, { taskId: classifyId, sequence: 0, kind: "classify" })).toContain(
        messages[0]!.content,
      );
      expect(() =>
        openText(nodeKeys.toNode, sealedPrompt!, { taskId: classifyId, sequence: 0, kind: "assign" }),
      ).toThrow();
      expect(nodeLink!.resolveClassifyResult(classifyId, Difficulty.COMPLEX, "mid-1")).toBe(true);
      expect(nodeLink!.waitMs("mid-1")).toBeLessThan(base.nodeBudgetMs);
      // now it is known to judge: the next request waits on it (for what its record says) and takes its answer
      const other = [{ role: "user", content: "What is the capital of Peru?" }];
      const answer = chain.classify({ messages: other });
      const asked = await nextAssign(outbox);
      expect(nodeLink!.resolveClassifyResult(asked.classifyId, Difficulty.ADVANCED, "mid-1")).toBe(true);
      expect(await answer).toEqual({ difficulty: "ADVANCED", classifier: "node" });
      expect(chain.stats().links.node).toMatchObject({ declined: 1, answered: 1 });
      expect(Object.keys(chain.stats().links)).toEqual(["node", "local"]);
    },
  );

  it("asks a node of another coordinator through its home, and forgets its record when it leaves", async () => {
    const registry = new NodeRegistry();
    const keys = sessionKeys("remote-1");
    const home = new LiveNode(
      "remote-1",
      "account",
      "session",
      "MID",
      "test",
      capabilities,
      100,
      keys.coordinator,
      new Channel<ConnectResponse>(),
      Date.now(),
    );
    const sent: ToHome[] = [];
    const link: HomeLink = {
      send: (_node, message) => void sent.push(message),
      assign: async () => undefined as never,
    };
    const remote = new RemoteNode("b", clusterNodeOf(home), keys.coordinator, link, Date.now());
    registry.add(remote);
    const { chain, nodeLink } = createCoordinatorClassifier(base, registry, pino({ level: "silent" }));
    expect(await chain.classify({ messages })).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    // the probe went to the node's home, sealed for the node's session
    const probe = sent[0]?.message;
    // the ConnectResponse the link made, passed on as it is
    const response = probe?.case === "response" ? (probe.value as ConnectResponse).message : undefined;
    if (response?.case !== "classifyAssign") throw new Error("no probe");
    const { classifyId, sealedPrompt } = response.value;
    expect(sent[0]?.taskId).toBe(classifyId);
    expect(openText(keys.node.toNode, sealedPrompt!, { taskId: classifyId, sequence: 0, kind: "classify" })).toContain(
      messages[0]!.content,
    );
    // its answer, back over the bus, earns it a record here
    expect(nodeLink!.resolveClassifyResult(classifyId, Difficulty.SIMPLE, "remote-1")).toBe(true);
    expect(nodeLink!.waitMs("remote-1")).toBeDefined();
    registry.remove(remote, "the node left coordinator b");
    expect(nodeLink!.waitMs("remote-1")).toBeUndefined();
  });

  it("a node that never answers costs no request anything: probed once, then resting", async () => {
    const registry = new NodeRegistry();
    const { outbox } = connect(registry, "silent");
    const { chain } = createCoordinatorClassifier({ ...base, nodeBudgetMs: 150 }, registry, pino({ level: "silent" }));
    // nobody waited for it: the link declined (see the counts below: no time-out)
    expect(await chain.classify({ messages })).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    await nextAssign(outbox); // the probe
    await new Promise((resolve) => setTimeout(resolve, 200)); // it lets its deadline pass
    const other = [{ role: "user", content: "Compare Redis and Memcached for sessions." }];
    expect(await chain.classify({ messages: other })).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    outbox.close();
    expect(await outbox.next()).toMatchObject({ done: true }); // the resting node was not probed again
    expect(chain.stats().links.node).toEqual({ answered: 0, failed: 0, timedOut: 0, abandoned: 0, declined: 2 });
  });

  it("with no idle node the local model decides at once", async () => {
    const registry = new NodeRegistry();
    const { chain } = createCoordinatorClassifier(base, registry, pino({ level: "silent" }));
    expect(await chain.classify({ messages })).toEqual({ difficulty: "COMPLEX", classifier: "local" });
    // at once: declined, not timed out at the budget
    expect(chain.stats().links.node).toMatchObject({ declined: 1, timedOut: 0 });
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
