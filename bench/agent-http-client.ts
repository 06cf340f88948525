// `npm run bench:agent-http` (#13): the agent's backend client (agent/backends/http-client.ts: undici's core on
// kept-alive connections of its own) beside node:http's client on a kept-alive Agent, the one it replaced, against
// the peers benchmark's upstream in its own process (bench/peers-upstream.ts: 16 content chunks, a finish chunk and
// [DONE] as one SSE answer). Both read the whole answer as Buffers; the CPU per request is this process's (the client
// alone), one request at a time and BENCH_HTTP_CONCURRENCY (100) at once, the clients alternating BENCH_ROUNDS (3)
// times, BENCH_HTTP_REQUESTS (10,000) requests each. A markdown table on stdout.
import http from "node:http";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { createHttpTransport } from "../agent/backends/http-client.ts";
import { startUpstreamProcess } from "./peers-processes.ts";
import { UPSTREAM_MODEL, UPSTREAM_TOKENS } from "./peers-upstream.ts";
import { ascending, fixed, markdownTable, percentile, whole } from "./stats.ts";

const body = JSON.stringify({
  model: UPSTREAM_MODEL,
  messages: [{ role: "user", content: "hello" }],
  stream: true,
  max_tokens: 16,
});
/** How the answer's first chunk carries its text: a whole answer has it and [DONE]. */
const firstToken = `"content":${JSON.stringify(UPSTREAM_TOKENS[0])}`;
const headers = { "content-type": "application/json", accept: "text/event-stream" };

type Client = (url: URL) => Promise<string>;

function nodeHttpClient(): Client & { close(): void } {
  const agent = new http.Agent({ keepAlive: true, scheduling: "lifo" });
  const client = (url: URL) =>
    new Promise<string>((resolve, reject) => {
      const request = http.request(
        url,
        { method: "POST", agent, headers: { ...headers, "content-length": Buffer.byteLength(body) } },
        async (response) => {
          const parts: Buffer[] = [];
          for await (const part of response.iterator({ destroyOnReturn: false })) parts.push(part as Buffer);
          resolve(Buffer.concat(parts).toString("utf8"));
        },
      );
      request.on("error", reject);
      request.setNoDelay(true);
      request.end(body);
    });
  return Object.assign(client, { close: () => agent.destroy() });
}

function agentClient(): Client & { close(): void } {
  const transport = createHttpTransport();
  const client = async (url: URL) => (await transport(url.href, { method: "POST", headers, body })).text();
  return Object.assign(client, { close: () => transport.close() });
}

/** `requests` answers through `client`, `concurrency` at a time; the CPU this process spent per request, µs. */
async function measure(client: Client, url: URL, requests: number, concurrency: number) {
  let left = requests;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) {
        const text = await client(url);
        if (!text.includes("[DONE]") || !text.includes(firstToken))
          throw new Error(`an incomplete answer: ${text.slice(0, 200)}`);
      }
    }),
  );
  const spent = process.cpuUsage(cpu);
  return {
    cpuUs: (spent.user + spent.system) / requests,
    perSecond: requests / ((performance.now() - started) / 1000),
  };
}

const median = (values: readonly number[]) => percentile(ascending(values), 50);

export async function runAgentHttpBench(): Promise<string> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const requests = Number(process.env.BENCH_HTTP_REQUESTS ?? 10_000);
  const concurrency = Number(process.env.BENCH_HTTP_CONCURRENCY ?? 100);
  const load = loadavg().map((n) => n.toFixed(2));
  const upstream = await startUpstreamProcess();
  const url = new URL(`http://127.0.0.1:${upstream.port}/v1/chat/completions`);
  const clients = {
    "node:http (Agent, keep-alive)": nodeHttpClient(),
    "the agent's client (undici core)": agentClient(),
  };
  const results = new Map<string, { cpuUs: number[]; perSecond: number[] }>();
  try {
    for (const [level, count] of [
      [1, Math.ceil(requests / 4)],
      [concurrency, requests],
    ] as const) {
      for (const client of Object.values(clients)) await measure(client, url, 500, level); // warm-up
      for (let round = 0; round < rounds; round++) {
        for (const [name, client] of Object.entries(clients)) {
          const { cpuUs, perSecond } = await measure(client, url, count, level);
          const key = `${name}|${level}`;
          const entry = results.get(key) ?? { cpuUs: [], perSecond: [] };
          entry.cpuUs.push(cpuUs);
          entry.perSecond.push(perSecond);
          results.set(key, entry);
        }
      }
    }
  } finally {
    for (const client of Object.values(clients)) client.close();
    await upstream.stop();
  }
  const rows: string[][] = [];
  for (const level of [1, concurrency]) {
    const base = median(results.get(`node:http (Agent, keep-alive)|${level}`)!.cpuUs);
    for (const name of Object.keys(clients)) {
      const { cpuUs, perSecond } = results.get(`${name}|${level}`)!;
      rows.push([
        name,
        String(level),
        `${fixed(median(cpuUs), 1)} (${cpuUs.map((v) => fixed(v, 1)).join(", ")})`,
        `${fixed(median(cpuUs) / base)}×`,
        whole(median(perSecond)),
      ]);
    }
  }
  return (
    `machine: ${cpus().length} cores, Node ${process.version}, load average ${load.join(" ")} at the start; ` +
    `${rounds} rounds, the clients alternating; the upstream in its own process\n\n` +
    markdownTable(
      ["client", "at once", "CPU µs a request, median (each round)", "÷ node:http", "requests/s, median"],
      rows,
      ["l", "r", "r", "r", "r"],
    )
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runAgentHttpBench().then(
    (table) => {
      console.log(`## The agent's backend client\n\n${table}`);
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
