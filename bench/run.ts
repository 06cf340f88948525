// `npm run bench`: the benchmarks that track the product's performance, one after another (today: the relay).
// The one-port listener benchmark stays separate (`npm run bench:single-port`).
import { runRelayBench } from "./relay.ts";

try {
  await runRelayBench();
  process.exit(0);
} catch (err) {
  console.error(err);
  process.exit(1);
}
