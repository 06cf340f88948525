// Relay benchmark (ii): aggregate tokens per second relayed by the coordinator from many load-generator nodes
// to many concurrent Chat streams, with the coordinator's CPU, and a CPU profile of the busiest window; then the
// rates with nodes that chunk as agents do (a task's tokens of a 10 ms tick as one chunk, more while backed up).
import { stampEvery } from "./load-node.ts";
import { summariseProfile } from "./profile-summary.ts";
import { cpuWindow, memoryMiB } from "./proc-stats.ts";
import type { BenchContext } from "./relay-context.ts";
import { startCoordinatorProcess } from "./coordinator-process.ts";
import type { WindowResult } from "./load-process.ts";
import { fixed, sleep, whole } from "./stats.ts";
import { KEEPS_UP, rate, saturated, throughputReport, type Measured } from "./relay-throughput-report.ts";

/** Offered rates are tried in this order until the coordinator falls behind. */
const LADDER = [2_500, 5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000];

export async function runThroughputBench(ctx: BenchContext): Promise<void> {
  const windowMs = ctx.quick ? 4_000 : 8_000;
  const settleMs = ctx.quick ? 1_500 : 2_000;
  const tokensPerChat = Number(process.env.BENCH_TOKENS_PER_CHAT ?? 1000);
  const coordinator = await startCoordinatorProcess({
    // long chats at low per-stream rates must not meet the SIMPLE deadline (60 s); no spot checks: each would re-run
    // a 1,000-token answer on a second slot that no client reads, and hold a client's next chat in the queue meanwhile
    env: { ...ctx.database.env, TASK_TIMEOUT_SIMPLE_MS: "600000", SPOT_CHECK_FRACTION: "0" },
    workDir: ctx.workDir,
    name: "throughput",
    profile: true,
  });
  ctx.onCleanup(() => coordinator.stop());
  const accountKey = ctx.database.accountKey;
  const rows: Measured[] = [];

  async function measure(coalesce: boolean, nodes: number, slots: number, offered: number): Promise<Measured> {
    await ctx.load.send({ cmd: "rate", tokensPerSecond: offered });
    await sleep(settleMs);
    const coordinatorCpu = cpuWindow(coordinator.pid);
    const loadCpu = cpuWindow(ctx.load.pid);
    const window = await ctx.load.send<WindowResult>({ cmd: "window", ms: windowMs });
    const row = {
      coalesce,
      nodes,
      slots,
      offered,
      window,
      coordinatorCpu: coordinatorCpu.stop().percent,
      loadCpu: loadCpu.stop().percent,
      coordinatorRss: memoryMiB(coordinator.pid).rss,
    };
    ctx.progress(
      `  ${nodes}×${slots} offered ${offered}/s: received ${Math.round(rate(row))}/s, ` +
        `coordinator ${row.coordinatorCpu.toFixed(0)}% CPU, ${fixed(window.emitted / Math.max(1, window.chunks), 1)} ` +
        `tokens a chunk` +
        (window.errors ? `, ${window.errors} errors (${window.firstError})` : ""),
    );
    rows.push(row);
    return row;
  }

  let profileMarkdown = "";
  let chosenProfile = "";
  const configs = ctx.quick
    ? [{ nodes: 20, slots: 5 }]
    : [
        { nodes: 20, slots: 5 },
        { nodes: 100, slots: 10 },
      ];
  // each configuration one chunk a token first, then at the same offered rates coalescing: the two side by side in
  // time, on a coordinator that has run as long
  for (const [index, { nodes, slots }] of configs.entries()) {
    for (const coalesce of [false, true]) {
      ctx.progress(
        `(ii) throughput${coalesce ? ", chunked as agents do" : ""}: ${nodes} nodes × ${slots} slots, ` +
          `${nodes * slots} chat streams`,
      );
      await ctx.load.send({
        cmd: "nodes",
        url: coordinator.url,
        accountKey,
        count: nodes,
        slots,
        prefix: `load${coalesce ? "c" : ""}${index}`,
        coalesce,
      });
      // later configurations start two steps below the best rate seen so far
      const bestSoFar = Math.max(0, ...rows.filter((r) => !r.coalesce).map(rate));
      const start = Math.max(
        0,
        LADDER.findLastIndex((offered) => offered <= bestSoFar / 4),
      );
      // chunking as agents do starts at the same first rate and climbs until it too falls behind
      const tried = rows.filter((r) => !r.coalesce && r.nodes === nodes && r.slots === slots).map((r) => r.offered);
      const offers = coalesce
        ? LADDER.slice(Math.max(0, LADDER.indexOf(tried[0] ?? LADDER[start]!)))
        : LADDER.slice(start);
      await ctx.load.send({ cmd: "rate", tokensPerSecond: offers[0]! });
      await ctx.load.send({ cmd: "clients", url: coordinator.url, accountKey, clients: nodes * slots, tokensPerChat });
      // one step past the first rate the coordinator cannot keep up with: more offered load means bigger batches
      // per read, so the rate it delivers when flooded is its real ceiling here
      let last: Measured | undefined;
      let behind = 0;
      for (const offered of offers) {
        last = await measure(coalesce, nodes, slots, offered);
        if (process.env.BENCH_PROFILE_AT === `${nodes}x${slots}@${offered}${coalesce ? "c" : ""}`) {
          // a window of one's choosing (e.g. 100x10@10000, a trailing c for the second table), profiled after it
          await coordinator.startProfile();
          await sleep(ctx.quick ? 3_000 : 8_000);
          const file = await coordinator.stopProfile();
          chosenProfile = `${nodes} × ${slots} at ${offered}/s offered:\n\n${summariseProfile(file).markdown}`;
          ctx.progress(`  profile: ${file}`);
        }
        behind = saturated(last) ? behind + 1 : 0;
        if (behind === 2) break;
      }
      if (!coalesce && index === 0 && last) {
        // profiled separately from the measured windows, at the highest rate tried: the coordinator at its limit
        ctx.progress(`(ii) profiling the coordinator at ${last.offered}/s offered`);
        await coordinator.startProfile();
        await sleep(ctx.quick ? 3_000 : 8_000);
        const file = await coordinator.stopProfile();
        profileMarkdown = summariseProfile(file).markdown;
        ctx.progress(`  profile: ${file}`);
      }
      await ctx.load.send({ cmd: "stopClients" });
      await ctx.load.send({ cmd: "stopNodes" });
    }
  }
  await coordinator.stop();

  const perToken = throughputReport(rows.filter((r) => !r.coalesce));
  const coalescing = throughputReport(rows.filter((r) => r.coalesce));
  ctx.print(
    "### (ii) Aggregate tokens/s relayed\n\n" +
      `Load-generator nodes speak NodeService over gRPC (one HTTP/2 connection each; one TaskChunk per ~4-byte ` +
      `token, sealed with AES-256-GCM by common/crypto as an agent does, opened by the coordinator) and emit at the ` +
      `offered rate, spread evenly over all slots (10 ms ticks); closed-loop clients (one HTTP/2 connection each, ` +
      `one per slot) call InferenceService.Chat with max_tokens ${tokensPerChat} and start the next chat when one ` +
      `ends (no spot checks: SPOT_CHECK_FRACTION=0, so every slot serves a client). Nodes and clients share one ` +
      `peer process; each window is ${windowMs / 1000} s after ${settleMs / 1000} s of settling. Rates step up until ` +
      `clients have received less than ${KEEPS_UP * 100}% of the offered rate twice in a row. ` +
      `Token latency: node's send to client's receipt of every ${stampEvery}th token. CPU % is of one core (100 = ` +
      `one core busy).\n\n` +
      perToken.markdown,
  );
  ctx.print(
    "### (ii) Aggregate tokens/s relayed, chunked as agents do\n\n" +
      `From the same first offered rate up (each configuration measured right after its table above), with load ` +
      `nodes that chunk as the agent does (agent/chunk-coalescer.ts, CHUNK_INTERVAL_MS at its default of 10 ms, the ` +
      `pump's tick): each task's tokens of a tick go out as one sealed chunk that says how many tokens it carries ` +
      `(TaskChunk.token_count), and while the connection pushes back they wait and join the next; the coordinator ` +
      `counts tokens, not chunks. Above, a chunk a token, and a node that meets push-back offers nothing that tick. ` +
      `Clients count tokens (the words in each Token event), not events. Token latency: from when the stamped token ` +
      `was owed (its tick; waiting in the node while backed up included) to its receipt.\n\n` +
      coalescing.markdown +
      `\n\nPeak tokens/s while keeping up: one chunk a token ${perToken.peak ? whole(perToken.peak) : "none"}, ` +
      `chunked as agents do ${coalescing.peak ? whole(coalescing.peak) : "none"}.`,
  );
  if (chosenProfile) ctx.print(`### (ii) The coordinator's CPU profile at BENCH_PROFILE_AT, ${chosenProfile}`);
  if (profileMarkdown) {
    ctx.print(
      `### (ii) Where the coordinator's time goes at the highest rate tried (V8 CPU profile of the coordinator ` +
        `process)\n\n${profileMarkdown}`,
    );
  }
}
