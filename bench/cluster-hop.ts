// What a cross-coordinator hop costs (issue #12): two coordinator processes on one database and NATS, one
// scripted node connected to B. The same short chats go to B (the node's home: no hop) and to A (assign and
// every chunk relayed through B over NATS), interleaved; p50/p90/p99 of time to first token and of the whole
// answer, beside the floors of any hop between two processes (hop-floor.ts). `npm run bench:cluster` (this file),
// and the last table of `npm run bench` (bench/workers.ts); NATS_URL (default nats://127.0.0.1:4222), BENCH_CHATS,
// BENCH_TOKENS.
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { NatsBus } from "../coordinator/cluster/bus-nats.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { startScriptedNode } from "../test/support/scripted-node.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "./coordinator-process.ts";
import { createBenchDatabase } from "./database.ts";
import { startHopFloors } from "./hop-floor.ts";
import { cpuSeconds, natsServerPid } from "./proc-stats.ts";
import { ascending, fixed, markdownTable, percentile, sleep } from "./stats.ts";

export interface ClusterHopOptions {
  /** Chats per path (BENCH_CHATS, default 300). */
  chats?: number;
  /** Chunks per answer (BENCH_TOKENS, default 16). */
  tokens?: number;
  natsUrl?: string;
}

export interface ClusterHopResult {
  markdown: string;
  /** What the hop added at p50, ms: to the first token and to the whole answer. */
  addedP50: { ttft: number; total: number };
}

/** Runs the two paths and returns the table (a PostgreSQL DATABASE_URL is needed: a cluster shares one server). */
export async function runClusterHopBench(options: ClusterHopOptions = {}): Promise<ClusterHopResult> {
  const chats = options.chats ?? 300;
  const tokens = options.tokens ?? 16;
  const natsUrl = options.natsUrl ?? "nats://127.0.0.1:4222";
  const load = loadavg()
    .map((n) => n.toFixed(2))
    .join(" ");
  const workDir = mkdtempSync(join(tmpdir(), "iris-bench-cluster-"));
  const database = await createBenchDatabase(process.env.DATABASE_URL?.trim() || undefined);
  const env = {
    ...database.env,
    NATS_URL: natsUrl,
    CLUSTER_NAME: `bench-${randomBytes(4).toString("hex")}`,
    SPOT_CHECK_FRACTION: "0",
    CANARY_INTERVAL_MS: "0",
    CLASSIFIER_NODE_BUDGET_MS: "0",
  };
  const started: CoordinatorProcess[] = [];
  try {
    // one after the other: A creates the key file B reads (every coordinator of a cluster holds the same key)
    const a = await startCoordinatorProcess({ env, workDir, name: "a" });
    started.push(a);
    const b = await startCoordinatorProcess({ env, workDir, name: "b" });
    started.push(b);
    const node = startScriptedNode({
      baseUrl: b.url,
      accountKey: database.accountKey,
      nodeId: "hop-node",
      maxConcurrentTasks: 1,
      script: () => ({ tokens: Array.from({ length: tokens }, (_, i) => `t${i} `) }),
    });
    await node.registered;
    // the bench account is exempt from the chat limits (UNLIMITED_ACCOUNT_KEYS)
    const clients = { same: client(b.url, database.accountKey), cross: client(a.url, database.accountKey) };
    // A knows the node once B's view arrives
    for (let waited = 0; ; waited += 100) {
      if ((await clients.cross.ask()).ok) break;
      if (waited > 10_000) throw new Error("coordinator A never saw the node on B");
      await sleep(100);
    }
    for (let i = 0; i < 20; i++) {
      await clients.same.ask(); // warm-up: connections, JIT
      await clients.cross.ask();
    }
    const samples = {
      same: { ttft: [] as number[], total: [] as number[] },
      cross: { ttft: [] as number[], total: [] as number[] },
      bus: [] as number[],
      floors: { tcp: [] as number[], rawNats: [] as number[], bus: [] as number[] },
    };
    // CPU seconds each path's chats cost A, B and nats-server, read around each chat (/proc counts in clock ticks:
    // one chat reads 0 or 10 ms, the sum over hundreds of chats is what it cost)
    const nats = natsServerPid();
    const cpuNow = () => [cpuSeconds(a.pid), cpuSeconds(b.pid), nats ? cpuSeconds(nats) : 0] as const;
    const cpu = { same: [0, 0, 0], cross: [0, 0, 0] };
    // the floor of a hop: one NATS round trip between two connections of this process, as the coordinators use them
    const logger = pino({ level: "silent" });
    const [asker, answerer] = [
      await NatsBus.connect({ servers: natsUrl, name: "bench-asker", logger }),
      await NatsBus.connect({ servers: natsUrl, name: "bench-answerer", logger }),
    ];
    answerer.serve(`${env.CLUSTER_NAME}.bench`, (data) => data);
    await answerer.flush();
    const payload = new Uint8Array(200);
    const roundTrip = async () => {
      const before = performance.now();
      await asker.request(`${env.CLUSTER_NAME}.bench`, payload, 5_000);
      return performance.now() - before;
    };
    // and back to back, every process awake: what a round trip costs a busy cluster (one at a time, between chats, each
    // wakes nats-server and two idle connections: on this machine that alone is most of the interleaved figure)
    const busyBus: number[] = [];
    for (let i = 0; i < chats; i++) busyBus.push(await roundTrip());
    // the floors between two processes, as the coordinators are (hop-floor.ts)
    const floors = await startHopFloors(natsUrl, `${env.CLUSTER_NAME}.floor`);
    let failed = 0;
    for (let i = 0; i < chats; i++) {
      samples.bus.push(await roundTrip());
      // in turn first, so that none always meets the processes the coldest
      const kinds = ["tcp", "rawNats", "bus"] as const;
      for (let k = 0; k < kinds.length; k++) {
        const kind = kinds[(i + k) % kinds.length]!;
        samples.floors[kind].push(await floors[kind]());
      }
      for (const path of i % 2 === 0 ? (["same", "cross"] as const) : (["cross", "same"] as const)) {
        const before = cpuNow();
        const result = await clients[path].ask();
        const after = cpuNow();
        for (let p = 0; p < 3; p++) cpu[path][p]! += after[p]! - before[p]!;
        if (!result.ok) failed++;
        else {
          samples[path].ttft.push(result.ttftMs);
          samples[path].total.push(result.totalMs);
        }
      }
    }
    const row = (name: string, values: number[]) => {
      const sorted = ascending(values);
      return [
        name,
        String(values.length),
        fixed(percentile(sorted, 50)),
        fixed(percentile(sorted, 90)),
        fixed(percentile(sorted, 99)),
      ];
    };
    const p50 = (values: number[]) => percentile(ascending(values), 50);
    const added = {
      ttft: p50(samples.cross.ttft) - p50(samples.same.ttft),
      total: p50(samples.cross.total) - p50(samples.same.total),
    };
    const markdown =
      `machine: ${cpus().length} cores, Node ${process.version}; database: ${database.label}; ` +
      `NATS ${natsUrl}; ${chats} chats per path, interleaved, one at a time, ${tokens} chunks each (a scripted node, ` +
      `no ` +
      `delay); load average ${load} at the start, ${loadavg()
        .map((n) => n.toFixed(2))
        .join(" ")} at the end\n\n` +
      markdownTable(
        ["path", "chats", "p50 ms", "p90 ms", "p99 ms"],
        [
          row("time to first token, node's own coordinator (B)", samples.same.ttft),
          row("time to first token, through another coordinator (A → B)", samples.cross.ttft),
          row(`whole answer (${tokens} chunks), node's own coordinator`, samples.same.total),
          row(`whole answer (${tokens} chunks), through another coordinator`, samples.cross.total),
          row("NATS request/reply round trip, two connections of the bench process (200 bytes)", samples.bus),
          row("the same round trip, back to back (every process awake)", busyBus),
          row("round trip between two processes: plain TCP, no NATS (200 bytes)", samples.floors.tcp),
          row("round trip between two processes: nats-server, the protocol by hand", samples.floors.rawNats),
          row("round trip between two processes: nats-server, the coordinators' client", samples.floors.bus),
        ],
        ["l", "r", "r", "r", "r"],
      ) +
      `\n\nadded by the hop at p50: ${fixed(added.ttft)} ms to the first token, ${fixed(added.total)} ms to the ` +
      `whole answer; failed chats: ${failed}\n\n` +
      markdownTable(
        ["CPU ms per chat", "A", "B (the node's home)", "nats-server", "in all"],
        (["same", "cross"] as const).map((path) => {
          const perChat = cpu[path].map((seconds) => (seconds * 1000) / samples[path].total.length);
          const label = path === "same" ? "node's own coordinator (B)" : "through another coordinator (A → B)";
          return [label, ...perChat.map((ms) => fixed(ms)), fixed(perChat[0]! + perChat[1]! + perChat[2]!)];
        }),
        ["l", "r", "r", "r", "r"],
      );
    node.kill();
    await Promise.all([asker.close(), answerer.close(), floors.close()]);
    return { markdown, addedP50: added };
  } finally {
    for (const coordinator of started.reverse()) await coordinator.stop().catch(() => {});
    await database.drop().catch(() => {});
    rmSync(workDir, { recursive: true, force: true });
  }
}

function client(baseUrl: string, accountKey: string) {
  const inference = createClient(InferenceService, createGrpcTransport({ baseUrl }));
  return {
    async ask(): Promise<{ ok: true; ttftMs: number; totalMs: number } | { ok: false }> {
      const started = performance.now();
      let first: number | undefined;
      try {
        for await (const response of inference.chat(
          { params: { messages: [{ role: 2, content: "Translate 'good morning' to French." }] } },
          { headers: { "x-iris-account-key": accountKey } },
        )) {
          if (response.event.case === "token") first ??= performance.now();
        }
      } catch {
        return { ok: false };
      }
      const end = performance.now();
      return { ok: true, ttftMs: (first ?? end) - started, totalMs: end - started };
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const count = (value: string | undefined) => (value ? Number(value) : undefined);
  runClusterHopBench({
    chats: count(process.env.BENCH_CHATS),
    tokens: count(process.env.BENCH_TOKENS),
    natsUrl: process.env.NATS_URL,
  }).then(
    (result) => {
      console.log(`## Cross-coordinator hop\n\n${result.markdown}`);
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
