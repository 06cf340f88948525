// A node of another coordinator in this registry's index of nodes with a free slot (NodeRegistry.nodesWithRoom): its
// slots are its home's to tell (views, a refused assign), not this registry's watcher's.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ClusterAssignReplySchema } from "../../gen/iris/v1/cluster_pb.ts";
import { ConnectResponseSchema } from "../../gen/iris/v1/node_pb.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import type { TaskSink } from "../nodes/task-sink.ts";
import { clusterNodeOf } from "./codec.ts";
import { RemoteNode, type HomeLink } from "./remote-node.ts";

const sink: TaskSink = { chunk() {}, result() {}, error() {}, lost() {} };
const assign = (taskId: string) =>
  create(ConnectResponseSchema, { message: { case: "taskAssign", value: { taskId } } });

describe("RemoteNode in the registry's nodes with room", () => {
  it("leaves when its home says it is busy, comes back with the home's next view, follows its tasks", async () => {
    const atHome = testNode("n1", "MID", { maxConcurrentTasks: 2 });
    const link: HomeLink = {
      send() {},
      assign: async () => create(ClusterAssignReplySchema, { accepted: false, reason: "busy" }),
    };
    const registry = new NodeRegistry();
    const remote = new RemoteNode("b", clusterNodeOf(atHome), atHome.keys, link, Date.now());
    registry.add(remote);
    expect([...registry.nodesWithRoom()]).toEqual([remote]);

    // the home refused: its slots were taken by tasks this coordinator has not heard of yet
    expect(await remote.sendAssign(assign("t1"))).toBe(false);
    expect(remote.freeSlots).toBe(0);
    expect([...registry.nodesWithRoom()]).toEqual([]);

    // the home's next view says nothing runs there after all: it has room again
    remote.apply(clusterNodeOf(atHome), Date.now());
    expect([...registry.nodesWithRoom()]).toEqual([remote]);

    // the home's view: both slots run other coordinators' tasks
    atHome.tasks.set("x1", sink);
    atHome.tasks.set("x2", sink);
    remote.apply(clusterNodeOf(atHome), Date.now());
    expect([...registry.nodesWithRoom()]).toEqual([]);

    // one of them ended
    atHome.tasks.delete("x1");
    remote.apply(clusterNodeOf(atHome), Date.now());
    expect(remote.freeSlots).toBe(1);
    expect([...registry.nodesWithRoom()]).toEqual([remote]);

    // paused at its home
    atHome.paused = true;
    remote.apply(clusterNodeOf(atHome), Date.now());
    expect([...registry.nodesWithRoom()]).toEqual([]);
  });
});
