// `npm run bench`: the benchmarks that track the product's performance, one after another: the relay, then the
// coordinator with 1 and 2 workers and the cross-coordinator hop (bench/workers.ts; PostgreSQL and NATS, else it
// says why it skipped). BENCH_ONLY picks phases: ttft, throughput, idle (the relay) and workers.
// The one-port listener benchmark stays separate (`npm run bench:single-port`).
import { runRelayBench } from "./relay.ts";
import { runWorkersBench } from "./workers.ts";

const relayPhases = ["ttft", "throughput", "idle"];
const only = process.env.BENCH_ONLY?.split(",").map((name) => name.trim());

try {
  if (!only || only.some((name) => relayPhases.includes(name))) await runRelayBench();
  if (!only || only.includes("workers")) await runWorkersBench();
  process.exit(0);
} catch (err) {
  console.error(err);
  process.exit(1);
}
