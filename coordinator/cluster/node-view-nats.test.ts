// The node view over the real NATS server: a home's views that NATS lost (a reconnect) leave a peer out of step until
// the next view, which shows the gap; the peer asks, and the home's full view puts it back in step. A full view larger
// than NATS takes in one message goes in parts.
import { generateKeyPairSync } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import pino from "pino";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { publicKeyBytes } from "../../common/crypto/envelope.ts";
import { type ClusterViewWanted, ClusterViewWantedSchema } from "../../gen/iris/v1/cluster_pb.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { lossyBus } from "../../test/support/lossy-bus.ts";
import { natsAnswers, natsSkipReason, testNatsUrl, uniqueClusterName } from "../../test/support/nats.ts";
import { clusterSubjects, type Bus } from "./bus.ts";
import { NatsBus } from "./bus-nats.ts";
import { ViewPublisher } from "./node-view.ts";
import type { HomeLink } from "./remote-node.ts";
import { ViewReceiver } from "./view-receiver.ts";

const nats = await natsAnswers();
const logger = pino({ level: "silent" });
const key = generateKeyPairSync("x25519").privateKey;
const coordinatorKey = { privateKey: key, publicKey: publicKeyBytes(key) };
const nodeKey = publicKeyBytes(generateKeyPairSync("x25519").privateKey);
const link: HomeLink = { send() {}, assign: () => Promise.reject(new Error("no assigns in this test")) };
/** How long a step may take on a loaded machine: a bound on waiting, not a measurement. */
const patience = { timeout: 10_000, interval: 20 };

const opened: Bus[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((bus) => bus.close()));
});

async function connect(name: string): Promise<Bus> {
  const bus = await NatsBus.connect({ servers: testNatsUrl, name, logger });
  opened.push(bus);
  return bus;
}

describe(`the node view over NATS${natsSkipReason(nats)}`, () => {
  it.skipIf(!nats)("a peer that missed views asks at the next one, and the full view adds and drops them", async () => {
    const subjects = clusterSubjects(uniqueClusterName("view"));
    const timing = { viewMs: 60_000, deadAfterMs: 180_000 };
    const base = { subjects, coordinatorKey, logger, ...timing };
    const home = { registry: new NodeRegistry(), ...lossyBus(await connect("h"), subjects.view) };
    const publisher = new ViewPublisher(
      { ...base, bus: home.bus, instance: "h", incarnation: "h-1", registry: home.registry },
      () => true,
    );
    const peer = new NodeRegistry();
    const receiver = new ViewReceiver(
      { ...base, bus: await connect("p"), instance: "p", incarnation: "p-1", registry: peer },
      link,
    );
    const wants: ClusterViewWanted[] = [];
    const listener = await connect("listener");
    listener.subscribe(subjects.want("h"), (data) => wants.push(fromBinary(ClusterViewWantedSchema, data)));
    await Promise.all(opened.map((bus) => bus.flush()));
    const add = (id: string) => {
      const node = testNode(id, "MID");
      node.publicKey = nodeKey;
      home.registry.add(node);
    };
    try {
      publisher.publishFull();
      add("n1");
      await vi.waitFor(() => expect(peer.get("n1")?.connected).toBe(true), patience);
      // n1 leaves and n2 comes (one view: the same turn); NATS loses it
      home.state.lose = 1;
      home.registry.remove(home.registry.get("n1")!, "gone");
      add("n2");
      await vi.waitFor(() => expect(home.state.lose).toBe(0), patience);
      expect(peer.get("n1")?.connected).toBe(true);
      publisher.beat();
      await vi.waitFor(() => expect([peer.get("n1"), peer.get("n2")?.connected]).toEqual([undefined, true]), patience);
      expect(wants).toMatchObject([{ origin: "p", incarnation: "h-1", reason: "gap" }]);
    } finally {
      publisher.stop(false);
      receiver.stop();
    }
  });

  it.skipIf(!nats)("a full view over NATS's max_payload (1 MB) reaches a peer in parts, every node of it", async () => {
    const subjects = clusterSubjects(uniqueClusterName("big-view"));
    const base = { subjects, coordinatorKey, logger, viewMs: 60_000, deadAfterMs: 180_000 };
    const home = new NodeRegistry();
    // ~220 bytes a node in a view: 6,000 nodes are ~1.3 MB, more than one message may carry
    const ids = Array.from({ length: 6_000 }, (_, i) => `node-${i}`);
    for (const id of ids) {
      const node = testNode(id, "MID");
      node.publicKey = nodeKey;
      home.add(node);
    }
    const homeBus = await connect("h");
    const publisher = new ViewPublisher(
      { ...base, bus: homeBus, instance: "h", incarnation: "h-1", registry: home },
      () => true,
    );
    const peer = new NodeRegistry();
    const receiver = new ViewReceiver(
      { ...base, bus: await connect("p"), instance: "p", incarnation: "p-1", registry: peer },
      link,
    );
    await Promise.all(opened.map((bus) => bus.flush()));
    try {
      publisher.publishFull();
      await vi.waitFor(() => expect([...peer.nodes()].length).toBe(ids.length), { timeout: 30_000, interval: 50 });
      expect(ids.every((id) => peer.get(id)?.connected)).toBe(true);
    } finally {
      publisher.stop(false);
      receiver.stop();
    }
  });

  it.skipIf(!nats)("a message NATS refuses (over max_payload) is logged and lost; the bus goes on", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const subject = `${uniqueClusterName("big")}.x`;
    const sender = await NatsBus.connect({ servers: testNatsUrl, name: "s", logger: pino(sink) });
    opened.push(sender);
    const receiver = await connect("r");
    const got: number[] = [];
    receiver.subscribe(subject, (data) => got.push(data.length));
    await receiver.flush();
    sender.publish(subject, new Uint8Array(2_000_000));
    sender.publish(subject, new Uint8Array(10));
    await vi.waitFor(() => expect(got).toEqual([10]), patience);
    expect(lines.join("")).toContain("a message could not be published");
  });
});
