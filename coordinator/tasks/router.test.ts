import { describe, expect, it } from "vitest";
import type { NodeCapabilities } from "../nodes/registry.ts";
import type { TaskSink } from "../nodes/task-sink.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { pickNode, type RouteRequest } from "./router.ts";

const sink: TaskSink = { chunk() {}, result() {}, error() {}, lost() {} };
const anyTask: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };

/** A node with `running` of its `slots` taken; `remote`: connected to another coordinator of the cluster. */
function node(id: string, options: { slots: number; running: number; remote?: boolean; reputation?: number }) {
  const capabilities: Partial<NodeCapabilities> = { maxConcurrentTasks: options.slots };
  const made = testNode(id, "MID", capabilities);
  if (options.remote) Object.defineProperty(made, "remote", { get: () => true });
  if (options.reputation !== undefined) made.reputation = options.reputation;
  for (let i = 0; i < options.running; i++) made.tasks.set(`${id}-${i}`, sink);
  return made;
}

describe("pickNode", () => {
  it("takes an idle node before a busy one, wherever it is connected", () => {
    const busyHere = node("busy-here", { slots: 8, running: 1 });
    const idleThere = node("idle-there", { slots: 1, running: 0, remote: true });
    expect(pickNode([busyHere, idleThere], anyTask)?.id).toBe("idle-there");
  });

  it("among idle nodes, the more reputable wins even behind another coordinator (SPEC)", () => {
    const here = node("here", { slots: 2, running: 0, reputation: 100 });
    const there = node("there", { slots: 2, running: 0, reputation: 120, remote: true });
    expect(pickNode([here, there], anyTask)?.id).toBe("there");
    expect(pickNode([there, here], anyTask)?.id).toBe("there");
  });

  it("breaks a tie between idle nodes in favour of this coordinator's own (no hop)", () => {
    const here = node("here", { slots: 2, running: 0 });
    const there = node("there", { slots: 2, running: 0, remote: true });
    expect(pickNode([there, here], anyTask)?.id).toBe("here");
    expect(pickNode([here, there], anyTask)?.id).toBe("here");
  });

  it("among busy nodes with a free slot, takes this coordinator's own before one with more room elsewhere", () => {
    const here = node("here", { slots: 4, running: 3 });
    const there = node("there", { slots: 4, running: 1, remote: true });
    expect(pickNode([there, here], anyTask)?.id).toBe("here");
  });

  it("among busy nodes of one coordinator, the one with more free slots", () => {
    const fuller = node("fuller", { slots: 4, running: 3 });
    const roomier = node("roomier", { slots: 4, running: 1 });
    expect(pickNode([fuller, roomier], anyTask)?.id).toBe("roomier");
    const fullerThere = node("fuller-there", { slots: 4, running: 3, remote: true });
    const roomierThere = node("roomier-there", { slots: 4, running: 1, remote: true });
    expect(pickNode([fullerThere, roomierThere], anyTask)?.id).toBe("roomier-there");
  });

  it("goes to another coordinator's node when this one's are full", () => {
    const full = node("full-here", { slots: 2, running: 2 });
    const there = node("there", { slots: 4, running: 3, remote: true });
    expect(pickNode([full, there], anyTask)?.id).toBe("there");
  });
});
