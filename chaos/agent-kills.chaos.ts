// Reliability: real agents on the tiny model SIGKILLed 50 times while 20 clients stream; every request ends for
// its client (done, or an error with a reason), no task row is left open, no completed answer loses its record.
import { afterAll, beforeAll, expect, it } from "vitest";
import { startAgentNetwork, type AgentNetwork, type AgentProcess } from "../test/support/agent-process.ts";
import { chatLoad, leftovers, report } from "./load.ts";

const KILLS = Number(process.env.CHAOS_AGENT_KILLS ?? 50);
const AGENTS = 3;

let network: AgentNetwork;
beforeAll(async () => {
  network = await startAgentNetwork();
  await Promise.all(Array.from({ length: AGENTS }, (_, i) => network.agent(`chaos-${i}`)));
}, 120_000);
afterAll(async () => {
  await network?.close();
});

it(`agent SIGKILL ×${KILLS} during 20 streams: 0 lost, 0 dangling`, async () => {
  let running = true;
  const load = chatLoad({ url: () => network.coordinator.url, concurrency: 20, running: () => running, maxTokens: 24 });
  const started = new Map<string, AgentProcess>([...network.agents]);
  let kills = 0;
  for (let round = 0; kills < KILLS; round++) {
    await new Promise((resolve) => setTimeout(resolve, 400));
    // the victim: a registered agent (one still loading its model would be killed before it served anything)
    const nodeId = `chaos-${round % AGENTS}`;
    const agent = started.get(nodeId);
    if (!agent || !network.coordinator.registry.get(nodeId)?.connected) continue;
    agent.kill();
    kills++;
    await agent.exited;
    // restarted at once, as a supervisor would: it re-registers in a second or two with the same key
    const next = network.agent(nodeId).catch(() => undefined);
    void next.then((restarted) => restarted && started.set(nodeId, restarted));
    started.delete(nodeId);
  }
  // a last stretch with the network whole again
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  running = false;
  const tally = await load;
  await network.coordinator.journal.flush();
  const left = await leftovers(network.coordinator.db, tally);
  report(`agent SIGKILL ×${kills} (3 agents, 20 streams)`, tally, left);
  expect(tally.lost).toBe(0);
  expect(left.dangling).toBe(0);
  expect(left.outcomesLost).toBe(0);
  expect(left.recordsLost).toBe(0);
  expect(tally.completed).toBeGreaterThan(0);
}, 600_000);
