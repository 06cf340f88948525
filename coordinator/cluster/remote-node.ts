// A node connected to another coordinator of the cluster, as this one routes to it: the home's view of it, and its
// messages sent over the bus to that home, which passes them on to the node unopened (sealed end to end).
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type {
  ClusterAssignReply,
  ClusterMeasurements,
  ClusterNode,
  ClusterToHomeSchema,
} from "../../gen/iris/v1/cluster_pb.ts";
import type { ConnectResponse, TaskChunk, TaskError, TaskResult } from "../../gen/iris/v1/node_pb.ts";
import type { SessionKeys } from "../../common/crypto/envelope.ts";
import type { IdentityRecord } from "../nodes/capability.ts";
import { gpusOf, sameGpus } from "../nodes/gpus.ts";
import { NodeMeasurements, type MeasuredSnapshot } from "../nodes/measurements.ts";
import { type AssignSent, LiveNode, type NodeField, type NodeOutbox, type TaskSink } from "../nodes/registry.ts";
import type { TaskChange } from "../nodes/task-table.ts";
import { BusError } from "./bus.ts";
import { capabilitiesOf, measurementsOf, sameMeasurements, snapshotOf, tierOf, verificationOf } from "./codec.ts";

/** A ClusterToHome without its origin, node and session (the link adds them). */
export interface ToHome {
  taskId?: string;
  message: MessageInitShape<typeof ClusterToHomeSchema>["message"];
}

/** The way to one node's home coordinator. */
export interface HomeLink {
  /** Publishes to the home (cancels, releases, updates, measurements). */
  send(node: RemoteNode, message: ToHome): void;
  /** Asks the home to pass an assign on; a bus failure is an answer too (not accepted, gone). */
  assign(node: RemoteNode, taskId: string, assign: ConnectResponse): Promise<ClusterAssignReply>;
}

/** A task another coordinator runs on the node: it holds a slot here, and nothing is sent to it. */
export class ElsewhereTask implements TaskSink {
  constructor(readonly startedAt: number) {}
  chunk(_chunk: TaskChunk): void {}
  result(_result: TaskResult): void {}
  error(_error: TaskError): void {}
  lost(_reason: string): void {}
}

class RemoteOutbox implements NodeOutbox {
  closed = false;
  forward: (message: ConnectResponse) => boolean = () => false;
  push(message: ConnectResponse): boolean {
    return !this.closed && this.forward(message);
  }
  close(_error?: ConnectError): void {
    this.closed = true;
  }
}

/** Measurements that also go to the home, which keeps (and writes) the node's record. */
class ForwardedMeasurements extends NodeMeasurements {
  constructor(
    model: string,
    stored: MeasuredSnapshot | undefined,
    private readonly forward: (message: ToHome["message"]) => void,
  ) {
    super(model, stored);
  }
  override answered(speed: number | undefined, contextTokens: number): boolean {
    const changed = super.answered(speed, contextTokens);
    const sample = {
      ...(speed !== undefined && Number.isFinite(speed) ? { speed } : {}),
      contextTokens: Math.max(0, Math.round(contextTokens)),
    };
    // sent whatever this copy made of it: the record the home keeps (and writes) is the one that counts
    this.forward({ case: "measured", value: { sample: { case: "answered", value: sample } } });
    return changed;
  }
  override refused(tokens: number): void {
    super.refused(tokens);
    this.forward({
      case: "measured",
      value: { sample: { case: "refusedTokens", value: Math.max(0, Math.round(tokens)) } },
    });
  }
  override compared(identity: IdentityRecord): void {
    super.compared(identity);
    this.forward({ case: "measured", value: { sample: { case: "compared", value: measurementsOf(this.snapshot()) } } });
  }
}

export class RemoteNode extends LiveNode {
  #applying = false;
  /** The home refused an assign as busy: no slot here until its next view says otherwise. */
  #full = false;
  /** Task ids this coordinator ended that the home may still list (the release is on its way): no slot for them. */
  readonly #released = new Set<string>();
  /** The home's measurements as last applied: the same again keeps the objects made of them. */
  #measuredView: ClusterMeasurements | undefined;

  constructor(
    /** The home coordinator's instance name. */
    readonly home: string,
    view: ClusterNode,
    keys: SessionKeys,
    private readonly link: HomeLink,
    now: number,
  ) {
    const outbox = new RemoteOutbox();
    super(
      view.nodeId,
      view.accountId,
      view.sessionId,
      tierOf(view.tier),
      view.tierReason,
      capabilitiesOf(view),
      view.reputation,
      keys,
      outbox,
      now,
    );
    outbox.forward = (message) => this.#forward(message);
    this.publicKey = view.publicKey;
    this.apply(view, now);
  }

  override get remote(): boolean {
    return true;
  }

  override get freeSlots(): number {
    return this.#full ? 0 : super.freeSlots;
  }

  /** Takes the home's latest view of the node; true when it may take work it could not before. */
  apply(view: ClusterNode, now: number): boolean {
    const before = { free: this.freeSlots, suspended: this.suspended, tier: this.tier };
    this.#applying = true;
    try {
      this.registeredAt = Number(view.registeredAtUnixMs);
      this.tier = tierOf(view.tier);
      this.tierReason = view.tierReason;
      this.reputation = view.reputation;
      this.suspended = view.suspended;
      this.paused = view.paused;
      this.load = view.load;
      this.size = verificationOf(view.size);
      const gpus = view.capabilities?.gpus ?? [];
      if (!sameGpus(gpus, this.capabilities.gpus)) this.capabilities.gpus = gpusOf(gpus);
      if (this.#measuredView === undefined || !sameMeasurements(view.measured, this.#measuredView)) {
        const snapshot = snapshotOf(view.measured);
        this.measured = new ForwardedMeasurements(this.measured.model, snapshot, (message) => this.#toHome(message));
        this.#measuredView = view.measured;
      }
      this.serviceTimes.splice(0, this.serviceTimes.length, ...view.serviceTimesMs);
      this.lastSeenAt = now;
      this.#full = false;
      this.#running(view);
    } finally {
      this.#applying = false;
    }
    this.routingChanged();
    return this.freeSlots > before.free || (before.suspended && !this.suspended) || this.tier !== before.tier;
  }

  /** The home's running tasks hold slots here too; this coordinator's own attempts are already in the table. */
  #running(view: ClusterNode): void {
    if (view.running.length === 0 && this.#released.size === 0 && this.tasks.size === 0) return;
    const running = new Map(view.running.map((task) => [task.taskId, Number(task.startedAtUnixMs)]));
    for (const [taskId, sink] of this.tasks)
      if (sink instanceof ElsewhereTask && !running.has(taskId)) this.tasks.delete(taskId);
    for (const [taskId, startedAt] of running)
      if (!this.tasks.has(taskId) && !this.#released.has(taskId)) this.tasks.set(taskId, new ElsewhereTask(startedAt));
    for (const taskId of this.#released) if (!running.has(taskId)) this.#released.delete(taskId);
  }

  override async sendAssign(message: ConnectResponse): Promise<AssignSent> {
    if (message.message.case !== "taskAssign" || !this.connected) return false;
    let reply: ClusterAssignReply;
    try {
      reply = await this.link.assign(this, message.message.value.taskId, message);
    } catch (err) {
      if (!(err instanceof BusError) || err.kind !== "too-large") throw err;
      return "unreachable"; // this task can never reach the node from here; others can
    }
    if (reply.accepted) return true;
    if (reply.gone) this.disconnect();
    else {
      this.#full = true;
      this.routingChanged();
    }
    return false;
  }

  override endConnection(error: ConnectError): void {
    this.#toHome({ case: "update", value: { disconnectMessage: error.rawMessage, disconnectCode: error.code } });
    this.disconnect();
  }

  override served(ms: number): void {
    super.served(ms);
    if (Number.isFinite(ms) && ms >= 0)
      this.#toHome({
        case: "measured",
        value: { sample: { case: "servedMs", value: Math.min(0xffff_ffff, Math.round(ms)) } },
      });
  }

  /** Suspensions (a mismatch here, ClearNode here) and reputation changes go to the home, which tells everyone. */
  protected override changed(field: NodeField): void {
    if (this.#applying) return;
    if (field === "suspended") this.#toHome({ case: "update", value: { suspended: this.suspended } });
    else if (field === "reputation") this.#toHome({ case: "update", value: { reputation: this.reputation } });
  }

  /** An attempt of this coordinator ended (Attempt.end): the home frees the slot. */
  protected override tasksChanged(change: Parameters<TaskChange>[0]): void {
    if (this.#applying || !change || change.added || change.sink instanceof ElsewhereTask) return;
    this.#released.add(change.taskId);
    this.link.send(this, { taskId: change.taskId, message: { case: "release", value: true } });
  }

  #forward(message: ConnectResponse): boolean {
    // cancels and classify assigns go to the home as they are (sealed for the node); the home sends the classify
    // answer back here. Task assigns go by sendAssign, a request the home answers.
    const m = message.message;
    const taskId = m.case === "cancel" ? m.value.taskId : m.case === "classifyAssign" ? m.value.classifyId : undefined;
    if (taskId === undefined) return false;
    this.link.send(this, { taskId, message: { case: "response", value: message } });
    return true;
  }

  #toHome(message: ToHome["message"]): void {
    if (!this.#applying && this.connected) this.link.send(this, { message });
  }
}
