// The cluster: this coordinator's part in a group of coordinators that share every node (docs/cluster.md). Without
// NATS_URL it is a cluster of one on the in-process bus, through the same code.
import { randomUUID, type KeyObject } from "node:crypto";
import type { Logger } from "pino";
import type { NodeRegistry } from "../nodes/registry.ts";
import { clusterSubjects, type Bus } from "./bus.ts";
import type { ClassifyResults } from "./forwarded-classify.ts";
import { startForwarding } from "./forwarding.ts";
import { ViewPublisher } from "./node-view.ts";
import { ViewReceiver } from "./view-receiver.ts";
import { QueueView } from "./queue-view.ts";
import type { QueuePeers } from "../tasks/queue.ts";

export interface ClusterOptions {
  bus: Bus;
  /** CLUSTER_NAME: the subject prefix; coordinators with the same name on one NATS form one cluster. */
  name: string;
  /** COORDINATOR_INSTANCE: this coordinator's name in the cluster (unique). */
  instance: string;
  /** This run's incarnation (default: a random id): peers that hear a new one under the name treat it as a restart. */
  incarnation?: string;
  registry: NodeRegistry;
  /** The cluster's shared coordinator key (COORDINATOR_PRIVATE_KEY_PATH): sealed frames open anywhere in it. */
  coordinatorKey: { privateKey: KeyObject; publicKey: Uint8Array };
  logger: Logger;
  viewMs: number;
  deadAfterMs: number;
  assignTimeoutMs: number;
  /** The classifier chain's node link (none when nodes are not asked): answers of nodes it asked elsewhere. */
  classifyLink?: ClassifyResults;
}

export interface Cluster {
  bus: Bus;
  /** This run's incarnation: a restart under the same COORDINATOR_INSTANCE has another. */
  readonly incarnation: string;
  /** The other coordinators heard from lately. */
  readonly peers: string[];
  /** The cluster's queue: the other coordinators' waiting requests (the orchestrator's queue shares it). */
  queue: QueuePeers;
  /**
   * Where NodeService sends its nodes' classify results: a peer's assign's answer goes back to that peer, the rest to
   * this coordinator's node link.
   */
  classifyResults: ClassifyResults;
  /** Publishes all of this coordinator's nodes now (otherwise: each change at once, and when a peer asks). */
  publishView(): void;
  /** Publishes what is pending, stops listening, and closes the bus. */
  stop(): Promise<void>;
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const subjects = clusterSubjects(options.name);
  let stopped: Promise<void> | undefined;
  const logger = options.logger.child({ cluster: options.name });
  const forwarding = startForwarding({ ...options, subjects, logger });
  const incarnation = options.incarnation ?? randomUUID();
  const context = { ...options, incarnation, subjects, logger };
  const queue = new QueueView({ ...context, hasPeers: () => receiver.hasPeers });
  // a peer that joins hears our whole view at once (one for every peer that joins or asks within a turn)
  const joined = (home: string) => {
    if (stopped) return; // after our leaving, a view would make us a member again
    publisher.wantFull(home);
    queue.joined();
  };
  const left = (home: string) => {
    queue.drop(home);
    forwarding.originGone(home);
  };
  const receiver = new ViewReceiver(context, forwarding.link, joined, left);
  const publisher = new ViewPublisher(
    context,
    () => receiver.hasPeers,
    () => queue.othersWaiting,
  );
  // subscribed before anyone is told we are here, so their answers reach us: a peer that knew an earlier run of
  // this name hears a new incarnation, drops what that run left, and greets this one with its whole view
  await options.bus.flush();
  publisher.publishFull();
  logger.info(
    { bus: options.bus.kind, instance: options.instance, incarnation },
    options.bus.kind === "nats" ? "cluster: joined over NATS" : "cluster: single coordinator (in-process bus)",
  );
  return {
    bus: options.bus,
    incarnation,
    get peers() {
      return receiver.peers;
    },
    queue,
    classifyResults: forwarding.classifyResults,
    publishView: () => publisher.publishFull(),
    stop() {
      stopped ??= (async () => {
        // the node streams are closed by now: their removals go out first, then the leaving, after which peers
        // hold nothing of this coordinator's (nodes, waiters, tasks it assigned) and hear it anew if it restarts
        publisher.stop();
        queue.stop();
        publisher.publishLeft();
        receiver.stop();
        forwarding.stop();
        await options.bus.close();
      })();
      return stopped;
    },
  };
}
