// The peers benchmark's report: the table of the issue (#13), a second table of what is left out of it, and the
// notes that say how each figure was made.
import { cpus, loadavg, totalmem } from "node:os";
import type { Target } from "./peers-client.ts";
import { ascending, fixed, markdownTable, percentile, signed } from "./stats.ts";
import { codeVersion } from "./code-version.ts";

export interface Sizes {
  rounds: number;
  sequential: number;
  concurrency: number;
  concurrent: number;
  warmup: number;
}

/** Everything measured of one target, pooled over the rounds. */
export interface Measured {
  target: Target;
  /** The server processes whose CPU is this target's: none for direct, Portkey's, Iris's coordinator and agent. */
  pids: { name: string; pid: number }[];
  wholeTotals: number[];
  streamedTtfts: number[];
  /** Socket reads of the sequential streamed responses, summed. */
  streamedReads: number;
  concurrentTtfts: number[];
  concurrentWallMs: number;
  /** Summed over the concurrent phases: from the last response until the servers and the database were idle again. */
  settleMs: number;
  cpu: Map<string, number>;
  clientCpuS: number;
  upstreamCpuS: number;
  databaseCpuS: number | undefined;
  errors: number;
  firstError?: string;
}

export function report(
  sizes: Sizes,
  measured: Measured[],
  databaseLabel: string,
  profileDir: string | undefined,
  loadAtStart: number[],
): string {
  const [direct, portkey, iris] = measured as [Measured, Measured, Measured];
  const p = (values: number[], q: number) => percentile(ascending(values), q);
  const perRequestMs = (seconds: number | undefined, m: Measured) =>
    seconds === undefined ? undefined : (1000 * seconds) / m.concurrentTtfts.length;
  const serverMs = (m: Measured) =>
    perRequestMs(
      [...m.cpu.values()].reduce((a, b) => a + b, 0),
      m,
    );
  const ratio = (irisValue: number | undefined, portkeyValue: number | undefined) =>
    irisValue === undefined || portkeyValue === undefined || !(portkeyValue > 0)
      ? "n/a"
      : `${(irisValue / portkeyValue).toFixed(2)}×`;
  const latencyRow = (label: string, pick: (m: Measured) => number[], q: number): string[] => {
    const base = p(pick(direct), q);
    const cell = (m: Measured) => `${fixed(p(pick(m), q))} (${signed(p(pick(m), q) - base)})`;
    return [label, fixed(base), cell(portkey), cell(iris), ratio(p(pick(iris), q) - base, p(pick(portkey), q) - base)];
  };
  const c = sizes.concurrency;
  const irisParts = [...iris.cpu].map(([name, s]) => `${name} ${fixed(perRequestMs(s, iris), 3)}`).join(" + ");
  const table = markdownTable(
    ["measure", "direct", "Portkey", "Iris", "Iris ÷ Portkey"],
    [
      latencyRow("non-streamed sequential: p50 total ms (added)", (m) => m.wholeTotals, 50),
      latencyRow("streamed sequential: TTFT p50 ms (added)", (m) => m.streamedTtfts, 50),
      latencyRow(`streamed ${c} concurrent: TTFT p50 ms (added)`, (m) => m.concurrentTtfts, 50),
      latencyRow(`streamed ${c} concurrent: TTFT p99 ms (added)`, (m) => m.concurrentTtfts, 99),
      [
        `CPU per request at ${c} concurrent, ms (server processes)`,
        "0 (no server between)",
        fixed(serverMs(portkey), 3),
        `${fixed(serverMs(iris), 3)} (${irisParts})`,
        ratio(serverMs(iris), serverMs(portkey)),
      ],
    ],
  );
  const rate = (m: Measured) => (1000 * m.concurrentTtfts.length) / m.concurrentWallMs;
  const added = (pick: (m: Measured) => number[]) => (m: Measured) => signed(p(pick(m), 50) - p(pick(direct), 50));
  const side = markdownTable(
    ["beside the table (streamed unless said)", ...measured.map((m) => m.target.name)],
    [
      ["non-streamed sequential: added p50 ms", ...measured.map(added((m) => m.wholeTotals))],
      ["streamed sequential: added TTFT p50 ms", ...measured.map(added((m) => m.streamedTtfts))],
      [
        `CPU per request at ${c} concurrent, ms (server processes)`,
        ...measured.map((m) => (m.pids.length === 0 ? "0" : fixed(serverMs(m), 3))),
      ],
      [`requests/s at ${c} concurrent (closed loop)`, ...measured.map((m) => fixed(rate(m), 0))],
      [
        `after a ${c}-concurrent phase, s until the servers were idle again`,
        ...measured.map((m) => fixed(m.settleMs / 1000 / sizes.rounds, 2)),
      ],
      [
        "socket reads per response, requests one at a time (client side)",
        ...measured.map((m) => fixed(m.streamedReads / m.streamedTtfts.length, 1)),
      ],
      [
        `client CPU per request at ${c} concurrent, ms (this process)`,
        ...measured.map((m) => fixed(perRequestMs(m.clientCpuS, m), 3)),
      ],
      [
        `client CPU at ${c} concurrent, % of one core`,
        ...measured.map((m) => fixed((100 * m.clientCpuS * 1000) / m.concurrentWallMs, 0)),
      ],
      [
        `upstream CPU per request at ${c} concurrent, ms (left out above)`,
        ...measured.map((m) => fixed(perRequestMs(m.upstreamCpuS, m), 3)),
      ],
      [
        `PostgreSQL backends of Iris's pool, CPU per request at ${c} concurrent, ms (left out above)`,
        ...measured.map((m) => fixed(perRequestMs(m.databaseCpuS, m), 3)),
      ],
      ["failed requests in the measured rounds", ...measured.map((m) => String(m.errors))],
    ],
  );
  const failures = measured.filter((m) => m.firstError).map((m) => `${m.target.name}'s first failure: ${m.firstError}`);
  const cpu = cpus();
  return [
    "## Iris beside Portkey and a direct call (bench:peers)",
    "",
    `${new Date().toISOString()}; Node ${process.version} (${process.platform} ${process.arch}); ` +
      `machine: ${cpu.length} cores ` +
      `(${cpu[0]?.model.trim() ?? "unknown CPU"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM; load average at the ` +
      `start ` +
      `${loadAtStart.map((n) => n.toFixed(2)).join(" ")}, at the end ${loadavg()
        .map((n) => n.toFixed(2))
        .join(
          " ",
        )} (other work on the machine skews every figure); code: ${process.env.PEERS_CODE_VERSION ?? codeVersion()}; ` +
      `Iris's database: ${databaseLabel}.`,
    "",
    `Requests per cell: ${sizes.rounds * sizes.sequential} for each sequential row (${sizes.rounds} rounds × ` +
      `${sizes.sequential}), ${sizes.rounds * sizes.concurrent} for each ${c}-concurrent row (${sizes.rounds} × ` +
      `${sizes.concurrent}), after a warm-up of 200 sequential requests of each kind and ${sizes.warmup} concurrent ` +
      `ones per target. Each round runs direct, Portkey, Iris and the two-process floor in turn (the order rotates ` +
      "every round), each phase after a few unmeasured requests that refill its connection pool.",
    "",
    table,
    "",
    side,
    "",
    "- Upstream: one local OpenAI-compatible server (bench/peers-upstream.ts, node:http, its own process) answering " +
      "`/v1/chat/completions` at once: 16 content chunks in OpenAI's chunk format, a finish_reason chunk (and a " +
      "usage chunk when " +
      'asked), `data: [DONE]`; or one JSON completion with usage. Every request: `model: "auto"`, `max_tokens: 16`, ' +
      "one user message.",
    "- direct = client → upstream. Portkey = client → `@portkey-ai/gateway` 1.15.2 (`build/start-server.js " +
      "--headless`, `x-portkey-provider: openai`, `x-portkey-custom-host: http://127.0.0.1:<upstream>/v1`) → " +
      "upstream. Iris = client → coordinator's OpenAI endpoint `/v1/chat/completions` (its own process, " +
      "LOG_LEVEL=info) → agent process " +
      `(IRIS_BACKEND=openai-compatible, MAX_CONCURRENT_TASKS=${c}, LOG_LEVEL=info) → upstream; the client ` +
      `authenticates ` +
      "with an account key (Authorization: Bearer) listed in UNLIMITED_ACCOUNT_KEYS.",
    "- two-process floor = client → front → back → upstream (bench/peers-floor.ts): the least Iris's shape costs, " +
      "none of its work. The front (HTTP/1.1, like the coordinator's OpenAI endpoint) hands each request's body down " +
      "one long-lived h2c stream to the back (as a coordinator's assigns go down an agent's Connect stream), the " +
      "back sends it to the upstream as it is and returns each read of the answer as a length-prefixed message; no " +
      "authentication, classification, routing, journal, sealing or protobuf. What it adds over direct is the price " +
      "of two Node.js processes and the hop between them; what Iris adds beyond it is Iris's own work.",
    "- Portkey runs with `node --import ./bench/peers-portkey-fetch.ts`: a wrapper around `globalThis.fetch` " +
      "returning `new Response(r.body, r)`, without which every streamed call fails under Node 24 (`TypeError: " +
      "immutable`: Portkey appends headers to fetch's Response). It costs Portkey one more Response object per call.",
    "- Portkey's stream reader sleeps 25 ms (`setTimeout(…, 25)`) before it passes on the first chunk of every " +
      "streamed answer: most of its streamed TTFT is that timer, not CPU.",
    `- One client for all of them, in this benchmark's own process: node:http with one keep-alive pool per target ` +
      `(up to ${c} ` +
      "sockets), prebuilt request bodies, every answer checked (status 200, the upstream's exact text, `[DONE]` or " +
      "usage). " +
      `At ${c} concurrent it shares this process's event loop; its own CPU is in the second table, the same code for ` +
      `each target.`,
    '- TTFT = first content delta; non-streamed latency = the whole answer. "added" = the target\'s percentile ' +
      "minus direct's " +
      "(a difference of percentiles). The ratio column divides Iris's added latency by Portkey's, and CPU by CPU.",
    "- CPU = utime + stime from /proc/<pid>/stat, over the measured concurrent phases (until the servers were idle " +
      "again, so work deferred past the last response counts too), divided by their requests: Portkey's process; for " +
      "Iris the coordinator and the agent together. The upstream's CPU is left out for everyone; the PostgreSQL " +
      "backends serving the coordinator's pool are shown apart in the second table (autovacuum, which Iris's writes " +
      "also cause, is not counted).",
    `- Everything (client, upstream, Portkey, coordinator, agent, PostgreSQL) shares this machine's ${cpu.length} ` +
      `cores: at ${c} concurrent, TTFT is mostly waiting for a core, close to ${c} ÷ requests/s.`,
    ...(failures.length ? [`- ${failures.join("; ")}`] : []),
    ...(profileDir ? [`- Logs and profiles kept in ${profileDir}.`] : []),
  ].join("\n");
}
