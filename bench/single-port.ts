// What one port for HTTP/1.1 + h2c costs: the same Connect handler behind a plain h2c listener and behind
// the coordinator's peeking listener (coordinator/single-port.ts). Prints a table; `npm run bench:single-port`.
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo, Server } from "node:net";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.ts";
import { ConnectRequestSchema, NodeService, type ConnectRequest } from "../gen/iris/v1/node_pb.ts";
import { createSinglePortServer } from "../coordinator/single-port.ts";

const unaryCalls = Number(process.env.BENCH_UNARY_CALLS ?? 3000);
const concurrency = 100;
const concurrentCalls = Number(process.env.BENCH_CONCURRENT_CALLS ?? 20000);
const streamMessages = Number(process.env.BENCH_STREAM_MESSAGES ?? 100000);

const handler = connectNodeAdapter({
  routes(router) {
    router.service(Health, { check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }) });
    // echoes every heartbeat as an ack: the shape of the node stream's hot path
    router.service(NodeService, {
      async *connect(requests) {
        for await (const _ of requests) yield { message: { case: "heartbeatAck", value: { reputation: 100 } } };
      },
    });
  },
});

async function listen(server: Server | http2.Http2Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

async function measure(port: number) {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
  const health = createClient(Health, transport);
  for (let i = 0; i < 500; i++) await health.check({}); // warm-up: JIT and the HTTP/2 session
  const latencies: number[] = [];
  for (let i = 0; i < unaryCalls; i++) {
    const start = process.hrtime.bigint();
    await health.check({});
    latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  latencies.sort((a, b) => a - b);

  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < concurrentCalls) await health.check({});
    }),
  );
  const rps = concurrentCalls / ((performance.now() - started) / 1000);

  const heartbeat = create(ConnectRequestSchema, { message: { case: "heartbeat", value: { load: 0.5 } } });
  async function* heartbeats(): AsyncGenerator<ConnectRequest> {
    for (let i = 0; i < streamMessages; i++) yield heartbeat;
  }
  const streamStart = performance.now();
  let acks = 0;
  for await (const _ of createClient(NodeService, transport).connect(heartbeats())) acks++;
  const messagesPerSecond = acks / ((performance.now() - streamStart) / 1000);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rps, messagesPerSecond };
}

const direct = http2.createServer(handler);
const single = createSinglePortServer(http.createServer(handler), http2.createServer(handler), {
  firstBytesTimeoutMs: 30_000,
});
const rows: [string, Awaited<ReturnType<typeof measure>>][] = [];
// alternate the order so neither listener always runs on a colder or warmer process
for (const [name, server] of [
  ["h2c direct", direct],
  ["one port (peek + replay)", single],
  ["h2c direct", direct],
  ["one port (peek + replay)", single],
] as const) {
  const port = server.listening ? (server.address() as AddressInfo).port : await listen(server);
  rows.push([name, await measure(port)]);
}
direct.close();
single.close();

console.log(
  `\nunary: ${unaryCalls} sequential gRPC calls; ${concurrentCalls} calls over ${concurrency} concurrent loops; ` +
    `bidi: ${streamMessages} messages on one stream\n`,
);
console.log("| listener | unary p50 ms | unary p99 ms | unary calls/s (100 concurrent) | bidi messages/s |");
console.log("|---|---:|---:|---:|---:|");
for (const [name, r] of rows) {
  console.log(
    `| ${name} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${Math.round(r.rps)} ` +
      `| ${Math.round(r.messagesPerSecond)} |`,
  );
}
process.exit(0);
