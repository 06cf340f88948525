// The node view's home and peers over the in-process bus, for its tests (coordinator/cluster/node-view-*.test.ts): a
// home's publisher over a lossy bus, a peer's receiver, a listener that records every view and ask.
import { create, fromBinary } from "@bufbuild/protobuf";
import { generateKeyPairSync } from "node:crypto";
import pino from "pino";
import { publicKeyBytes } from "../../common/crypto/envelope.ts";
import {
  ClusterAssignReplySchema,
  type ClusterView,
  ClusterViewSchema,
  type ClusterViewWanted,
  ClusterViewWantedSchema,
} from "../../gen/iris/v1/cluster_pb.ts";
import { clusterSubjects, type Bus } from "../../coordinator/cluster/bus.ts";
import { LocalBus, LocalNetwork } from "../../coordinator/cluster/bus-local.ts";
import { ViewPublisher, type NodeViewContext } from "../../coordinator/cluster/node-view.ts";
import type { HomeLink, RemoteNode } from "../../coordinator/cluster/remote-node.ts";
import { ViewReceiver } from "../../coordinator/cluster/view-receiver.ts";
import { NodeRegistry } from "../../coordinator/nodes/registry.ts";
import { testNode } from "./live-nodes.ts";
import { lossyBus } from "./lossy-bus.ts";

const key = generateKeyPairSync("x25519").privateKey;
export const coordinatorKey = { privateKey: key, publicKey: publicKeyBytes(key) };
export const nodeKey = publicKeyBytes(generateKeyPairSync("x25519").privateKey);
export const subjects = clusterSubjects("t");
export const link: HomeLink = { send() {}, assign: async () => create(ClusterAssignReplySchema, { gone: true }) };

/** Every turn the views, asks and full views of a test take (each hop is a microtask or a setImmediate). */
export const settled = async (turns = 6) => {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

export function context(bus: Bus, instance: string, registry: NodeRegistry, partBytes?: number): NodeViewContext {
  const logger = pino({ level: "silent" });
  const timing = { viewMs: 60_000, deadAfterMs: 180_000, fullViewPartBytes: partBytes };
  return { bus, subjects, instance, incarnation: `${instance}-1`, registry, coordinatorKey, logger, ...timing };
}

/**
 * Home "h" (its publisher, over a lossy bus), peer "p" (a receiver), and what crosses the bus; `partBytes`: the home's
 * limit for one message of a full view; `othersWaiting`: whether peers have requests waiting (by default they have,
 * so that every change goes out at the end of its turn).
 */
export function setup(options: { partBytes?: number; othersWaiting?: () => boolean } = {}) {
  const network = new LocalNetwork();
  const home = { registry: new NodeRegistry(), ...lossyBus(new LocalBus(network), subjects.view) };
  const publisher = new ViewPublisher(
    context(home.bus, "h", home.registry, options.partBytes),
    () => true,
    options.othersWaiting,
  );
  const peer = { registry: new NodeRegistry(), bus: new LocalBus(network) };
  let receiver: ViewReceiver | undefined;
  const join = () => {
    receiver = new ViewReceiver(context(peer.bus, "p", peer.registry), link);
    return receiver;
  };
  const heard = { views: [] as ClusterView[], bytes: [] as number[], wants: [] as ClusterViewWanted[] };
  const listener = new LocalBus(network);
  listener.subscribe(subjects.view, (data) => {
    heard.views.push(fromBinary(ClusterViewSchema, data));
    heard.bytes.push(data.length);
  });
  listener.subscribe(subjects.want("h"), (data) => heard.wants.push(fromBinary(ClusterViewWantedSchema, data)));
  const connect = (id: string) => {
    const node = testNode(id, "MID");
    node.publicKey = nodeKey;
    home.registry.add(node);
    return node;
  };
  /** Nodes n0 … n(count-1), connected to the home; their ids. */
  const connectMany = (count: number) => Array.from({ length: count }, (_, i) => connect(`n${i}`).id);
  const remote = (id: string) => peer.registry.get(id) as RemoteNode | undefined;
  const stop = () => {
    publisher.stop(false);
    receiver?.stop();
  };
  return { network, home, peer, publisher, join, heard, connect, connectMany, remote, stop };
}
