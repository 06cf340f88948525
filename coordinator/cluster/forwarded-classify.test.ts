// Classify assigns through a node's home: coordinator "a" asks a node whose home is "b"; b passes the assign on and
// sends the node's answer back to a's node link (not to its own), only from the node asked, over the same connection.
import { create } from "@bufbuild/protobuf";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { Difficulty } from "../../gen/iris/v1/common_pb.ts";
import { ConnectResponseSchema, type ConnectResponse } from "../../gen/iris/v1/node_pb.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import type { Channel } from "../../common/channel.ts";
import { clusterSubjects } from "./bus.ts";
import { LocalBus, LocalNetwork } from "./bus-local.ts";
import { clusterNodeOf } from "./codec.ts";
import type { ClassifyResults } from "./forwarded-classify.ts";
import { startForwarding } from "./forwarding.ts";
import { RemoteNode } from "./remote-node.ts";

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** What a coordinator's node link heard. */
function recordingLink() {
  const results: [string, Difficulty, string][] = [];
  const gone: string[] = [];
  const link: ClassifyResults = {
    resolveClassifyResult: (classifyId, difficulty, fromNodeId) => {
      results.push([classifyId, difficulty, fromNodeId]);
      return true;
    },
    nodeGone: (nodeId) => void gone.push(nodeId),
  };
  return { link, results, gone };
}

function setup() {
  const network = new LocalNetwork();
  const subjects = clusterSubjects("t");
  const logger = pino({ level: "silent" });
  const start = (instance: string, registry: NodeRegistry, classifyLink: ClassifyResults) =>
    startForwarding({
      bus: new LocalBus(network),
      subjects,
      instance,
      registry,
      logger,
      assignTimeoutMs: 1_000,
      classifyLink,
    });
  // b is the node's home
  const homeRegistry = new NodeRegistry();
  const node = testNode("n1", "MID");
  homeRegistry.add(node);
  const atHome = recordingLink();
  const home = start("b", homeRegistry, atHome.link);
  // a sees it as a remote node of b's
  const registry = new NodeRegistry();
  const asker = recordingLink();
  const origin = start("a", registry, asker.link);
  const remote = new RemoteNode("b", clusterNodeOf(node), node.keys, origin.link, Date.now());
  registry.add(remote);
  const outbox = (node as unknown as { outbox: Channel<ConnectResponse> }).outbox;
  return { node, remote, home, origin, atHome, asker, outbox, homeRegistry };
}

const classifyAssign = (classifyId: string, deadlineMs = 2_000) =>
  create(ConnectResponseSchema, {
    message: {
      case: "classifyAssign",
      value: {
        classifyId,
        deadlineUnixMs: BigInt(Date.now() + deadlineMs),
        sealedPrompt: { ciphertext: new Uint8Array([1]) },
      },
    },
  });

describe("classify through a node's home", () => {
  it("passes a peer's assign to the node as it is, and the node's answer back to that peer's node link", async () => {
    const { remote, home, outbox, asker, atHome } = setup();
    expect(remote.send(classifyAssign("c1"))).toBe(true);
    await settle();
    const sent = (await outbox.next()).value as ConnectResponse;
    expect(sent.message).toMatchObject({ case: "classifyAssign", value: { classifyId: "c1" } });
    // the node's answer arrives on its stream at b (NodeService): it is a's, not b's own link's
    expect(home.classifyResults.resolveClassifyResult("c1", Difficulty.COMPLEX, "n1")).toBe(true);
    await settle();
    expect(asker.results).toEqual([["c1", Difficulty.COMPLEX, "n1"]]);
    expect(atHome.results).toEqual([]);
    // answered once: a repeat is b's own link's business (unknown to it here, but asked)
    expect(home.classifyResults.resolveClassifyResult("c1", Difficulty.SIMPLE, "n1")).toBe(true);
    await settle();
    expect(asker.results).toHaveLength(1);
    expect(atHome.results).toEqual([["c1", Difficulty.SIMPLE, "n1"]]);
  });

  it("takes an answer only from the node asked, and not after the node reconnected", async () => {
    const { remote, home, asker, atHome, homeRegistry } = setup();
    const other = testNode("n2", "MID");
    homeRegistry.add(other);
    remote.send(classifyAssign("c2"));
    await settle();
    home.classifyResults.resolveClassifyResult("c2", Difficulty.COMPLEX, "n2");
    await settle();
    expect(asker.results).toEqual([]);
    expect(atHome.results).toEqual([["c2", Difficulty.COMPLEX, "n2"]]);
    // n1 reconnects over a new session before answering: the answer is dropped (a knows only the old session)
    const again = testNode("n1", "MID");
    Object.defineProperty(again, "sessionId", { value: "session-again" });
    homeRegistry.add(again);
    expect(home.classifyResults.resolveClassifyResult("c2", Difficulty.COMPLEX, "n1")).toBe(true);
    await settle();
    expect(asker.results).toEqual([]);
  });

  it("forgets the open assigns of a node that left and of an asker that is gone", async () => {
    const { remote, home, origin, asker, atHome } = setup();
    remote.send(classifyAssign("c3"));
    remote.send(classifyAssign("c4"));
    await settle();
    home.classifyResults.nodeGone("n1");
    expect(atHome.gone).toEqual(["n1"]);
    expect(home.classifyResults.resolveClassifyResult("c3", Difficulty.COMPLEX, "n1")).toBe(true);
    await settle();
    expect(asker.results).toEqual([]);
    remote.send(classifyAssign("c5"));
    await settle();
    home.originGone("a");
    home.classifyResults.resolveClassifyResult("c5", Difficulty.COMPLEX, "n1");
    await settle();
    expect(asker.results).toEqual([]);
    origin.stop();
    home.stop();
  });

  it("sends nothing for a node this coordinator no longer reaches", async () => {
    const { remote, outbox } = setup();
    remote.disconnect();
    expect(remote.send(classifyAssign("c6"))).toBe(false);
    await settle();
    outbox.close();
    expect(await outbox.next()).toMatchObject({ done: true });
  });
});
