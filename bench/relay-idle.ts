// Relay benchmark (iii): the coordinator's CPU and memory with connected idle nodes that heartbeat (BENCH_IDLE_NODES,
// 1,000 unless set; 10,000 is the goal of issue #13 and takes about 1.5 minutes here).
import type { BenchContext } from "./relay-context.ts";
import { startCoordinatorProcess } from "./coordinator-process.ts";
import { cpuWindow, memoryMiB } from "./proc-stats.ts";
import { fixed, markdownTable, sleep } from "./stats.ts";

export async function runIdleBench(ctx: BenchContext): Promise<void> {
  const count = Number(process.env.BENCH_IDLE_NODES ?? 1000);
  const windowMs = ctx.quick ? 5_000 : 10_000;
  const heartbeatMs = 5_000; // the default HEARTBEAT_INTERVAL_MS, which the coordinator hands every node
  const coordinator = await startCoordinatorProcess({ env: ctx.database.env, workDir: ctx.workDir, name: "idle" });
  ctx.onCleanup(() => coordinator.stop());
  const accountKey = ctx.database.accountKey;
  ctx.progress(`(iii) idle nodes: ${count}`);

  await sleep(2_000);
  const before = memoryMiB(coordinator.pid);
  const emptyCpu = cpuWindow(coordinator.pid);
  await sleep(windowMs / 2);
  const emptyIdle = emptyCpu.stop();

  const { ms: registerMs, retried } = await ctx.load.send<{ ms: number; retried: number }>({
    cmd: "nodes",
    url: coordinator.url,
    accountKey,
    count,
    slots: 1,
    prefix: "idle",
  });
  const registered = memoryMiB(coordinator.pid);
  await sleep(3_000);
  const settled = memoryMiB(coordinator.pid);
  const busyCpu = cpuWindow(coordinator.pid);
  await sleep(windowMs);
  const connectedIdle = busyCpu.stop();
  const after = memoryMiB(coordinator.pid);
  await ctx.load.send({ cmd: "stopNodes" });
  await coordinator.stop();

  const table = markdownTable(
    ["state", "connected nodes", "RSS MiB", "CPU % while idle", "window s"],
    [
      ["started, no node yet", "0", fixed(before.rss, 1), fixed(emptyIdle.percent, 2), fixed(emptyIdle.seconds, 1)],
      [`just after ${count} registrations`, String(count), fixed(registered.rss, 1), "—", "—"],
      [
        "3 s later, idle (heartbeats only)",
        String(count),
        fixed(settled.rss, 1),
        fixed(connectedIdle.percent, 2),
        fixed(connectedIdle.seconds, 1),
      ],
      ["end of the idle window", String(count), fixed(after.rss, 1), "—", "—"],
    ],
  );
  const perNodeKiB = ((after.rss - before.rss) * 1024) / count;
  ctx.print(
    "### (iii) Coordinator with idle connected nodes\n\n" +
      `${count} NodeService peers (one HTTP/2 connection each), registered in waves of 100, heartbeating every ` +
      `${heartbeatMs / 1000} s (the default HEARTBEAT_INTERVAL_MS), no tasks. CPU % is of one core over the ` +
      `window.\n\n` +
      table +
      `\n\nRegistering ${count} nodes took ${(registerMs / 1000).toFixed(2)} s ` +
      `(${Math.round(count / (registerMs / 1000))} nodes/s; ` +
      `each registration reads the account and writes the node and its session to the database` +
      (retried > 0 ? `; ${retried} missed the register timeout and registered again` : "") +
      "). " +
      `Memory per connected node ≈ ${perNodeKiB.toFixed(0)} KiB of RSS; peak RSS ${fixed(after.peak, 1)} MiB.`,
  );
}
