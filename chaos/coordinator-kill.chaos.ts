// Reliability: the coordinator process SIGKILLed three times with ~20 streams in flight and restarted on the same
// PostgreSQL; the restarted one ends the dead one's tasks with a reason, so no task row stays open.
import { afterAll, beforeAll, expect, it } from "vitest";
import { newAccountKey } from "../test/support/coordinator.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "../test/support/coordinator-process.ts";
import { createTestDatabase, type TestDatabase } from "../test/support/database.ts";
import { startScriptedNode, type ScriptedNode } from "../test/support/scripted-node.ts";
import { chatLoad, leftovers, report } from "./load.ts";

const ROUNDS = 3;

let database: TestDatabase;
let coordinator: CoordinatorProcess;
let nodes: ScriptedNode[] = [];
let accountKey: string;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  for (const node of nodes) node.kill();
  await coordinator?.kill();
  await database?.close();
});

async function start(): Promise<void> {
  coordinator = await startCoordinatorProcess({
    DATABASE_URL: database.url,
    COORDINATOR_INSTANCE: "chaos-coordinator",
    HEARTBEAT_INTERVAL_MS: "500",
  });
  accountKey ??= await newAccountKey(coordinator.url);
  for (const node of nodes) node.kill();
  // slow answers (30 chunks, 40 ms apart), so that every kill finds streams in flight
  nodes = Array.from({ length: 4 }, (_, i) =>
    startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId: `chaos-node-${i}`,
      maxConcurrentTasks: 8,
      script: () => ({ tokens: Array.from({ length: 30 }, (_, t) => ` t${t}`), delayMs: 40 }),
    }),
  );
  await Promise.all(nodes.map((n) => n.registered));
}

it(`coordinator SIGKILL ×${ROUNDS} with streams in flight, restarted on the same database: 0 lost, 0 ` +
  `dangling`, async () => {
  await start();
  let running = true;
  const load = chatLoad({
    url: () => coordinator.url,
    concurrency: 20,
    running: () => running,
    clientTimeoutMs: 60_000,
  });
  let inFlightAtKill = 0;
  for (let round = 0; round < ROUNDS; round++) {
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const open = await database.db
      .selectFrom("tasks")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("status", "in", ["queued", "assigned", "streaming"])
      .executeTakeFirstOrThrow();
    inFlightAtKill += Number(open.n);
    await coordinator.kill();
    await start();
  }
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  running = false;
  const tally = await load;
  // a graceful stop of the last one writes its journal out, as an operator's SIGTERM would
  coordinator.child.kill("SIGTERM");
  expect(await coordinator.exited).toBe(0);
  const left = await leftovers(database.db, tally);
  const interrupted = await database.db
    .selectFrom("tasks")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("status", "=", "failed")
    .where("failure_reason", "like", "%coordinator%")
    .executeTakeFirstOrThrow();
  report(
    `coordinator SIGKILL ×${ROUNDS}, restart (4 nodes, 20 streams)`,
    tally,
    left,
    `${inFlightAtKill} task rows open at the kills (journal flushed); ${interrupted.n} ended by the restarted ` +
      `coordinator`,
  );
  expect(tally.lost).toBe(0);
  expect(left.dangling).toBe(0);
  expect(left.outcomesLost).toBe(0);
  // an answer whose completion was in memory at the kill is ended `failed` by the restart (counted, not lost)
  expect(left.recordsLost).toBe(0);
}, 300_000);
