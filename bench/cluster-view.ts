// What the shared node view costs (issue #12): one home coordinator with N nodes and one peer, in this process over
// the in-process bus (startCluster, as a coordinator runs it), CLUSTER_VIEW_MS 1000, the home's nodes taking and
// freeing slots at BENCH_CHANGES a second. Bytes the home publishes on the view subject (protobuf payloads; NATS adds
// a header of some 40 bytes to each), and the time the peer's view handler takes (decode and apply: synchronous, so
// CPU time). `npm run bench:cluster-view`; BENCH_NODES (default 1000,10000), BENCH_SECONDS (default 30, so that one
// full view of every 30 beats falls in it), BENCH_CHANGES (default 100). BENCH_BASELINE_DIR: a checkout of other code
// (e.g. `git archive HEAD`) whose copy of this file runs first, for a before/after table.
import { fromBinary } from "@bufbuild/protobuf";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { publicKeyBytes } from "../common/crypto/envelope.ts";
import { clusterSubjects, type Bus } from "../coordinator/cluster/bus.ts";
import { LocalBus, LocalNetwork } from "../coordinator/cluster/bus-local.ts";
import { startCluster, type Cluster } from "../coordinator/cluster/cluster.ts";
import { ViewPublisher } from "../coordinator/cluster/node-view.ts";
import { ViewReceiver } from "../coordinator/cluster/view-receiver.ts";
import { NodeRegistry, type TaskSink } from "../coordinator/nodes/registry.ts";
import * as clusterMessages from "../gen/iris/v1/cluster_pb.ts";
import { ClusterViewSchema } from "../gen/iris/v1/cluster_pb.ts";
import { testNode } from "../test/support/live-nodes.ts";
import { ascending, fixed, markdownTable, percentile, sleep, whole } from "./stats.ts";

const VIEW_MS = 1_000;
const logger = pino({ level: "silent" });
const key = generateKeyPairSync("x25519").privateKey;
const coordinatorKey = { privateKey: key, publicKey: publicKeyBytes(key) };
const nodeKey = publicKeyBytes(generateKeyPairSync("x25519").privateKey);
const code = ClusterViewSchema.fields.some((field) => field.name === "parts")
  ? "deltas and beats, full view in parts"
  : "ClusterViewWantedSchema" in clusterMessages
    ? "deltas and beats"
    : "full view every second";

/** A baseline's rows (older code's copy of this file) may lack the fields added since. */
type FullView = Awaited<ReturnType<typeof fullView>>;
type Row = { code: string; nodes: number } & Awaited<ReturnType<typeof traffic>> &
  Omit<FullView, "fullViewMessages" | "longestMs" | "homeLongestMs"> &
  Partial<Pick<FullView, "fullViewMessages" | "longestMs" | "homeLongestMs">>;

/** A bus that counts what is published on `subject`, and times the handlers of it. */
function metered(bus: Bus, subject: string) {
  const meter = { bytes: 0, messages: 0, handlerMs: 0 };
  const wrapped: Bus = {
    kind: bus.kind,
    serve: (to, responder) => bus.serve(to, responder),
    request: (to, data, timeoutMs) => bus.request(to, data, timeoutMs),
    flush: () => bus.flush(),
    close: () => bus.close(),
    publish(to, data) {
      if (to === subject) {
        meter.bytes += data.byteLength;
        meter.messages++;
      }
      bus.publish(to, data);
    },
    subscribe(to, handler) {
      if (to !== subject) return bus.subscribe(to, handler);
      return bus.subscribe(to, (data) => {
        const started = performance.now();
        handler(data);
        meter.handlerMs += performance.now() - started;
      });
    },
  };
  return { bus: wrapped, meter };
}

async function start(bus: Bus, instance: string, registry: NodeRegistry): Promise<Cluster> {
  return startCluster({
    bus,
    name: "bench",
    instance,
    registry,
    coordinatorKey,
    logger,
    viewMs: VIEW_MS,
    deadAfterMs: 3 * VIEW_MS,
    assignTimeoutMs: 2_000,
  });
}

/** The view's traffic over `seconds` of slot changes: what the home publishes, what the peer spends on it. */
async function traffic(nodes: number, seconds: number, changesPerSecond: number) {
  const network = new LocalNetwork();
  const home = metered(new LocalBus(network), "bench.view");
  const peer = metered(new LocalBus(network), "bench.view");
  const registries = { home: new NodeRegistry(), peer: new NodeRegistry() };
  const homeCluster = await start(home.bus, "home", registries.home);
  const live = Array.from({ length: nodes }, (_, i) => {
    const node = testNode(`node-${i}`, "MID", { maxConcurrentTasks: 4 });
    node.publicKey = nodeKey;
    registries.home.add(node);
    return node;
  });
  const peerCluster = await start(peer.bus, "peer", registries.peer);
  while (registries.peer.size < nodes) await sleep(50); // the greeting: the home's full view
  // slots taken and freed on the home's nodes, a tick every 10 ms
  const sink: TaskSink = { startedAt: Date.now(), chunk() {}, result() {}, error() {}, lost() {} };
  let task = 0;
  const churn = setInterval(() => {
    for (let i = 0; i < changesPerSecond / 100; i++) {
      const node = live[Math.floor(Math.random() * nodes)]!;
      const first = node.tasks.keys().next();
      if (!first.done && Math.random() < 0.5) node.tasks.delete(first.value);
      else if (node.tasks.size < 4) node.tasks.set(`t${task++}`, sink);
    }
  }, 10);
  await sleep(2 * VIEW_MS); // settled
  for (const m of [home.meter, peer.meter]) Object.assign(m, { bytes: 0, messages: 0, handlerMs: 0 });
  const cpu = process.cpuUsage();
  const started = performance.now();
  await sleep(seconds * 1_000);
  const elapsed = (performance.now() - started) / 1_000;
  const used = process.cpuUsage(cpu);
  const counted = { home: { ...home.meter }, peer: { ...peer.meter } };
  clearInterval(churn);
  const row = {
    bytesPerSecond: counted.home.bytes / elapsed,
    messagesPerSecond: counted.home.messages / elapsed,
    peerMsPerSecond: counted.peer.handlerMs / elapsed,
    processCpuMsPerSecond: (used.user + used.system) / 1_000 / elapsed,
  };
  await Promise.all([peerCluster.stop(), homeCluster.stop()]);
  return row;
}

/**
 * What a full view of `nodes` unchanged nodes costs a peer that holds them (a resync, a greeting, the 30-beat one):
 * the messages a home publishes for it (one, or parts when it is larger than FULL_VIEW_PART_BYTES), decoding and
 * applying them, each the median of 15 after 5 warm-ups, straight into a receiver; and the longest a peer's event
 * loop is held by one of them (its parts are applied a turn each). Also the longest turn of the home's own event loop
 * while it publishes the view (its nodes are encoded a slice a turn), the median of 5.
 */
async function fullView(nodes: number) {
  const subjects = clusterSubjects("bench");
  const home = new NodeRegistry();
  for (let i = 0; i < nodes; i++) {
    const node = testNode(`node-${i}`, "MID", { maxConcurrentTasks: 4 });
    node.publicKey = nodeKey;
    node.measured.answered(20 + (i % 7), 1_000);
    home.add(node);
  }
  const messages: Uint8Array[] = [];
  // the home's messages, kept as they are published
  const bus: Bus = {
    kind: "local",
    publish: (to, data) => void (to === subjects.view && messages.push(data)),
    subscribe: () => () => {},
    serve: () => () => {},
    request: () => Promise.reject(new Error("not in this bench")),
    flush: async () => {},
    close: async () => {},
  };
  const timing = { viewMs: 1e9, deadAfterMs: 1e9 };
  const homeContext = { bus, subjects, instance: "home", incarnation: "home-1", registry: home, coordinatorKey };
  const publisher = new ViewPublisher({ ...homeContext, logger, ...timing }, () => true);
  const homeLongest: number[] = [];
  for (let i = 0; i < 5; i++) {
    messages.length = 0;
    // the gaps between a ticker's turns (the call itself is in the first)
    let last = performance.now();
    let longest = 0;
    let ticking = true;
    const tick = () => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    publisher.publishFull();
    longest = Math.max(longest, performance.now() - last);
    while (messages.length === 0) await new Promise((resolve) => setImmediate(resolve));
    ticking = false;
    homeLongest.push(longest);
  }
  const context = { bus: new LocalBus(), subjects, instance: "peer", incarnation: "peer" };
  const receiver = new ViewReceiver(
    { ...context, registry: new NodeRegistry(), coordinatorKey, logger, ...timing },
    { send() {}, assign: () => Promise.reject(new Error("not in this bench")) },
  );
  for (const data of messages) receiver.receive(fromBinary(ClusterViewSchema, data));
  const samples = { decode: [] as number[], apply: [] as number[], longest: [] as number[] };
  for (let i = 0; i < 20; i++) {
    let [decode, apply, longest] = [0, 0, 0];
    for (const data of messages) {
      const decoding = performance.now();
      const view = fromBinary(ClusterViewSchema, data);
      const applying = performance.now();
      receiver.receive(view);
      const done = performance.now();
      decode += applying - decoding;
      apply += done - applying;
      longest = Math.max(longest, done - decoding);
    }
    if (i < 5) continue;
    samples.decode.push(decode);
    samples.apply.push(apply);
    samples.longest.push(longest);
  }
  receiver.stop();
  const passOverMs = await passOver(publisher, messages, { ...context, registry: new NodeRegistry(), timing });
  const median = (values: number[]) => percentile(ascending(values), 50);
  return {
    fullViewBytes: messages.reduce((sum, data) => sum + data.byteLength, 0),
    fullViewMessages: messages.length,
    decodeMs: median(samples.decode),
    applyMs: median(samples.apply),
    longestMs: median(samples.longest),
    homeLongestMs: median(homeLongest),
    passOverMs,
  };
}

/** CLUSTER_VIEW_MS and CLUSTER_DEAD_AFTER_MS of the full-view measures: long enough that no beat or expiry runs. */
type Timing = { viewMs: number; deadAfterMs: number };

/**
 * What a full view another peer asked for costs a peer in step with the home (it holds every earlier view): its
 * messages delivered over the in-process bus (a copy each) and passed over, their nodes unread. The median of 15
 * after 5 warm-ups, each a new full view numbered after the last.
 */
async function passOver(
  publisher: ViewPublisher,
  messages: Uint8Array[],
  peer: { subjects: ReturnType<typeof clusterSubjects>; registry: NodeRegistry; timing: Timing },
): Promise<number> {
  const network = new LocalNetwork();
  const { subjects, registry, timing } = peer;
  const receiver = new ViewReceiver(
    {
      bus: new LocalBus(network),
      subjects,
      registry,
      instance: "peer",
      incarnation: "peer",
      coordinatorKey,
      logger,
      ...timing,
    },
    { send() {}, assign: () => Promise.reject(new Error("not in this bench")) },
  );
  const home = new LocalBus(network);
  const next = async (asker?: string) => {
    messages.length = 0;
    if (asker === undefined) publisher.publishFull();
    else publisher.wantFull(asker);
    while (messages.length === 0) await new Promise((resolve) => setImmediate(resolve));
    return [...messages];
  };
  const deliver = async (views: Uint8Array[]) => {
    const started = performance.now();
    for (const data of views) home.publish(subjects.view, data);
    await new Promise((resolve) => setImmediate(resolve)); // delivered a microtask later, each
    return performance.now() - started;
  };
  await deliver(await next()); // the home's nodes, all of them: the peer is in step after it
  await new Promise((resolve) => setTimeout(resolve, 20)); // parts read whole are applied a turn each
  const samples: number[] = [];
  for (let i = 0; i < 20; i++) {
    const views = await next("another peer");
    const before = receiver.passedOver;
    const ms = await deliver(views);
    if (receiver.passedOver !== before + views.length) throw new Error("the peer in step read a full view for another");
    if (i >= 5) samples.push(ms);
  }
  receiver.stop();
  publisher.stop(false);
  return percentile(ascending(samples), 50);
}

export async function runClusterViewBench(options: { nodes: number[]; seconds: number; changes: number }) {
  const rows: Row[] = [];
  for (const nodes of options.nodes) {
    const full = await fullView(nodes); // first: the traffic's garbage would land in its samples
    rows.push({ code, nodes, ...(await traffic(nodes, options.seconds, options.changes)), ...full });
  }
  return rows;
}

function table(rows: Row[]): string {
  return markdownTable(
    [
      "code",
      "nodes",
      "bytes/s published",
      "messages/s",
      "peer ms/s applying views",
      "process CPU ms/s",
      "one full view, bytes",
      "its messages",
      "peer ms to decode it",
      "peer ms to apply it",
      "peer in step, ms to pass over one for another",
      "peer's longest turn, ms",
      "home's longest turn, ms",
    ],
    rows.map((r) => [
      r.code,
      whole(r.nodes),
      whole(r.bytesPerSecond),
      fixed(r.messagesPerSecond, 1),
      fixed(r.peerMsPerSecond),
      fixed(r.processCpuMsPerSecond, 1),
      whole(r.fullViewBytes),
      // a baseline from before parts sent its full view as one message
      String(r.fullViewMessages ?? 1),
      fixed(r.decodeMs, 1),
      fixed(r.applyMs, 1),
      r.passOverMs === undefined ? "–" : fixed(r.passOverMs, 1),
      fixed(r.longestMs ?? r.decodeMs + r.applyMs, 1),
      r.homeLongestMs === undefined ? "–" : fixed(r.homeLongestMs, 1),
    ]),
    ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r"],
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const options = {
    nodes: (process.env.BENCH_NODES ?? "1000,10000").split(",").map(Number),
    seconds: Number(process.env.BENCH_SECONDS ?? 30),
    changes: Number(process.env.BENCH_CHANGES ?? 100),
  };
  const load = loadavg()[0]!.toFixed(2);
  const baselineDir = process.env.BENCH_BASELINE_DIR;
  const baseline: Row[] = baselineDir
    ? JSON.parse(
        execFileSync(process.execPath, ["--import", "tsx", join(baselineDir, "bench/cluster-view.ts"), "--json"], {
          cwd: baselineDir,
          env: { ...process.env, BENCH_BASELINE_DIR: "" },
          encoding: "utf8",
          stdio: ["ignore", "pipe", "inherit"],
        }),
      )
    : [];
  runClusterViewBench(options).then(
    (rows) => {
      if (process.argv.includes("--json")) console.log(JSON.stringify(rows));
      else
        console.log(
          `## Node view\n\nmachine: ${cpus().length} cores, Node ${process.version}; ${options.seconds} s per row, ` +
            `${options.changes} slot changes/s on the home's nodes, CLUSTER_VIEW_MS ${VIEW_MS}; in-process bus; ` +
            `load average ${load} at the start, ${loadavg()[0]!.toFixed(2)} at the end\n\n` +
            table([...baseline, ...rows]),
        );
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
