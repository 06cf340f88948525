// Relay benchmark (i): time to first token through Iris vs straight to the same backend, and the
// coordinator's own hop with a scripted node that answers at once.
import type { BenchContext } from "./relay-context.ts";
import { startBenchAgent } from "./agent-process.ts";
import { startCoordinatorProcess } from "./coordinator-process.ts";
import { summariseProfile } from "./profile-summary.ts";
import { fixed, markdownTable, percentile, signed, sleep, whole } from "./stats.ts";
import { grpcChat, measureTtft, sseChat, type TtftPlan, type TtftResult } from "./ttft.ts";

const TOKENS = ["Hello", ",", " world", "!"];
const STANDIN_MODEL = "qwen2.5-7b-instruct";

interface Row {
  path: string;
  plan: TtftPlan;
  result: TtftResult;
  baseline?: TtftResult;
}

function table(rows: Row[]): string {
  return markdownTable(
    [
      "path",
      "concurrent streams",
      "requests",
      "requests/s",
      "TTFT p50 ms",
      "TTFT p99 ms",
      "added p50 ms",
      "added p99 ms",
    ],
    rows.map(({ path, plan, result, baseline }) => {
      const p50 = percentile(result.samples, 50);
      const p99 = percentile(result.samples, 99);
      const added = (p: number, value: number) => (baseline ? signed(value - percentile(baseline.samples, p)) : "—");
      return [
        path,
        String(plan.concurrency),
        String(result.samples.length),
        whole(result.rate),
        fixed(p50),
        fixed(p99),
        added(50, p50),
        added(99, p99),
      ];
    }),
  );
}

export async function runTtftBench(ctx: BenchContext): Promise<void> {
  const maxMs = ctx.quick ? 4_000 : 10_000;
  const plans: TtftPlan[] = [
    { concurrency: 1, requests: ctx.quick ? 100 : 300, warmup: 30, maxMs },
    { concurrency: 100, requests: ctx.quick ? 500 : 2000, warmup: 200, maxMs },
  ];
  const warmup = (request: () => Promise<number>) =>
    measureTtft(request, { concurrency: 20, requests: 0, warmup: 600, maxMs: 4_000 });
  // BENCH_PROFILE_TTFT=1: a CPU profile of the coordinator during the scripted hop at the highest concurrency
  const profile = process.env.BENCH_PROFILE_TTFT === "1";
  const coordinator = await startCoordinatorProcess({
    env: ctx.database.env,
    workDir: ctx.workDir,
    name: "ttft",
    profile,
  });
  ctx.onCleanup(() => coordinator.stop());
  const accountKey = ctx.database.accountKey;
  const { baseUrl: standinUrl } = await ctx.load.send<{ baseUrl: string }>({ cmd: "standin", tokens: TOKENS });

  ctx.progress("(i) TTFT: agent → LM Studio stand-in");
  const agent = startBenchAgent({
    COORDINATOR_URL: coordinator.url,
    IRIS_ACCOUNT_KEY: accountKey,
    NODE_ID: "bench-agent",
    IRIS_BACKEND: "lmstudio",
    BACKEND_URL: standinUrl,
    MAX_CONCURRENT_TASKS: "100",
    BENCHMARK_TOKENS: "4",
    LOG_LEVEL: "info",
  });
  ctx.onCleanup(() => agent.stop());
  await agent.registered;

  const backendRows: Row[] = [];
  const direct = sseChat(standinUrl, STANDIN_MODEL, accountKey);
  const throughGrpc = grpcChat(coordinator.url, accountKey).request;
  const throughOpenAi = sseChat(`${coordinator.url}/v1`, "auto", accountKey);
  // a freshly started agent and coordinator run cold code (JIT) for their first few hundred tasks: warm both paths
  // up before any measurement, so that neither is measured colder than the other
  await warmup(throughGrpc);
  await warmup(throughOpenAi).catch(() => {});
  for (const plan of plans) {
    const baseline = await measureTtft(direct, plan);
    backendRows.push({ path: "direct: OpenAI SSE client → stand-in", plan, result: baseline });
    backendRows.push({
      path: "Iris: gRPC Chat → coordinator → agent → stand-in",
      plan,
      result: await measureTtft(throughGrpc, plan),
      baseline,
    });
    try {
      backendRows.push({
        path: "Iris: OpenAI SSE → coordinator → agent → stand-in",
        plan,
        result: await measureTtft(throughOpenAi, plan),
        baseline,
      });
    } catch (err) {
      ctx.progress(`OpenAI-compatible path failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  await agent.stop();
  await sleep(300); // the coordinator drops the agent from its registry when its stream ends

  ctx.progress("(i) TTFT: scripted node (coordinator only)");
  await ctx.load.send({
    cmd: "scriptedNode",
    url: coordinator.url,
    accountKey,
    nodeId: "bench-scripted",
    slots: 100,
    tokens: TOKENS,
  });
  const { url: directUrl } = await ctx.load.send<{ url: string }>({ cmd: "directChatServer", tokens: TOKENS });
  const hopRows: Row[] = [];
  const directGrpc = grpcChat(directUrl, accountKey).request;
  await warmup(throughGrpc);
  let profileMarkdown = "";
  for (const plan of plans) {
    const baseline = await measureTtft(directGrpc, plan);
    hopRows.push({
      path: "direct: gRPC Chat → server in the node's process, answering at once",
      plan,
      result: baseline,
    });
    const profiled = profile && plan === plans.at(-1);
    if (profiled) await coordinator.startProfile();
    hopRows.push({
      path: "Iris: gRPC Chat → coordinator → scripted node (answers at once)",
      plan,
      result: await measureTtft(throughGrpc, plan),
      baseline,
    });
    if (profiled) profileMarkdown = summariseProfile(await coordinator.stopProfile()).markdown;
  }
  await ctx.load.send({ cmd: "stopScriptedNodes" });
  await coordinator.stop();

  ctx.print(
    "### (i) Time to first token: through Iris vs straight to the backend\n\n" +
      `Backend: the LM Studio stand-in (${TOKENS.length} tokens, first token at once, ${STANDIN_MODEL}) in the peer ` +
      `process. ` +
      "The real agent (MAX_CONCURRENT_TASKS=100) is its own process; clients run in the bench's main process, one " +
      "HTTP/2 connection for gRPC, a pooled HTTP/1.1 keep-alive connection per concurrent SSE stream. Each " +
      "concurrent stream runs its requests one after another (closed loop), so at 100 streams TTFT is mostly waiting " +
      "for CPU: it is about 100 / (requests/s). Each row runs up to its request count or " +
      `${maxMs / 1000} s, whichever comes first; ` +
      'both paths are warmed up first. "added" is the through-Iris percentile minus the direct one (a difference of ' +
      "percentiles, not a percentile of differences). Nodes and clients use one account listed in " +
      "UNLIMITED_ACCOUNT_KEYS " +
      "(gRPC: x-iris-account-key; OpenAI: Authorization: Bearer), so chat limits never refuse the benchmark.\n\n" +
      table(backendRows),
  );
  ctx.print(
    "### (i) The coordinator's own hop: scripted node answering its assignment at once\n\nNo agent, no backend: a " +
      "NodeService peer (test/support/scripted-node.ts) sends its 4 chunks and result the moment the assignment " +
      "arrives. The baseline is the same connect-es gRPC Chat stream served directly by a server in that same peer " +
      "process, yielding the same events at once; the difference is what the coordinator adds (its hop to the node " +
      "and back, auth and validation, classification, routing, sealing the assignment and opening the chunks, the " +
      "task journal).\n\n" +
      table(hopRows),
  );
  if (profileMarkdown)
    ctx.print(
      `### (i) Where the coordinator's time goes per request (CPU profile, scripted ` +
        `hop, ${plans.at(-1)!.concurrency} streams)\n\n${profileMarkdown}`,
    );
}
