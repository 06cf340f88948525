// The agent's link to the coordinator: one NodeService.Connect stream, registration, heartbeats, tasks, pause and
// graceful quit, and reconnection with exponential backoff and full jitter when the stream breaks.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { callBidi } from "../common/grpc/bidi-client.ts";
import type { Logger } from "pino";
import { Channel } from "../common/channel.ts";
import { deriveSessionKeys, type SessionKeys } from "../common/crypto/envelope.ts";
import { registerProof } from "../common/crypto/register-proof.ts";
import { trustedWith } from "../common/ca-file.ts";
import { Tier } from "../gen/iris/v1/common_pb.ts";
import { ConnectRequestSchema, NodeService, type ConnectRequest } from "../gen/iris/v1/node_pb.ts";
import type { Backend } from "./backends/backend.ts";
import { answerClassifyAssign } from "./classify.ts";

import type { NodeIdentity } from "./node-identity.ts";
import type { AgentState } from "./state.ts";
import type { OutgoingMessage } from "./outgoing-message.ts";
import { TaskRunner } from "./tasks.ts";
import { gpuMessages, registerMessage } from "./register-message.ts";
import { TlsFaultCounter } from "./tls-faults.ts";
import { CoordinatorList } from "./coordinator-list.ts";

/** The coordinator refused the node for good (bad or unknown key, invalid registration): retrying won't help. */
export class RegistrationRefused extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
    this.name = "RegistrationRefused";
  }
}

export interface ConnectionOptions {
  /** COORDINATOR_URL: one URL, or several comma-separated (a cluster): the link moves to the next when one fails. */
  coordinatorUrl: string;
  identity: NodeIdentity;
  backend: Backend;
  logger: Logger;
  /** Aborting stops at once: running tasks are dropped (the coordinator re-routes them when the stream ends). */
  signal: AbortSignal;
  /** Where the terminal UI reads the connection's state from. */
  state?: AgentState;
  backoff?: { initialMs: number; maxMs: number };
  random?: () => number;
  /** CA certificates (PEM) trusted beside Node's roots: COORDINATOR_CA_PATH, for a coordinator with a private CA. */
  ca?: string[];
}

/** Full jitter: a uniform delay up to the exponential bound, so a coordinator restart doesn't get a thundering herd. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  return Math.round(random() * Math.min(maxMs, initialMs * 2 ** attempt));
}

/** How long a quitting node waits for the coordinator to end the stream after it half-closes its side. */
const CLOSE_TIMEOUT_MS = 3_000;

/** The live session's handles, for pause (heartbeat now) and quit (hand back, half-close). */
interface SessionHandle {
  runner?: TaskRunner;
  heartbeat(): void;
  /** Ends the node's side of the stream; the coordinator reads what was sent, then ends its side. */
  close(): void;
  ended: Promise<void>;
}

/**
 * The node's link to the coordinator across reconnects. `run()` serves until stopped; `setPaused` stops or
 * resumes taking tasks; `quit` stops taking tasks, lets running ones finish, hands back the rest, and ends `run()`.
 */
export class CoordinatorLink {
  readonly #stop = new AbortController();
  #paused = false;
  #quitting: Promise<void> | undefined;
  readonly #handBackNow = new AbortController();
  #session: SessionHandle | undefined;
  /** The coordinators to try, and which one the link uses now: a failed one hands over to the next. */
  readonly #coordinators: CoordinatorList;

  constructor(private readonly options: ConnectionOptions) {
    this.#coordinators = new CoordinatorList(options.coordinatorUrl);
    options.signal.addEventListener("abort", () => this.#stop.abort(), { once: true });
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** The coordinator the link uses now (or tries next). */
  get coordinatorUrl(): string {
    return this.#coordinators.current;
  }

  /** While paused the heartbeat says so (the coordinator routes the node nothing) and stray assignments are refused. */
  setPaused(paused: boolean): void {
    if (this.#quitting && !paused) return; // a quitting node takes no new work
    if (this.#paused === paused) return;
    this.#paused = paused;
    this.options.logger.info({ paused }, paused ? "paused: taking no new tasks" : "resumed: taking tasks");
    this.options.state?.setPaused(paused);
    this.#session?.heartbeat(); // tell the coordinator now, not at the next interval
  }

  /**
   * Graceful stop: pause, wait up to `graceMs` for the running tasks (or until `handBackNow()`), give the
   * rest back to the coordinator to re-route, close the stream, and let `run()` return. Idempotent.
   */
  quit(graceMs: number): Promise<void> {
    this.#quitting ??= this.#quit(graceMs);
    return this.#quitting;
  }

  /** During quit: stop waiting and hand the running tasks back at once. */
  handBackNow(): void {
    this.#handBackNow.abort();
  }

  async #quit(graceMs: number): Promise<void> {
    const { logger, state } = this.options;
    this.setPaused(true);
    state?.quitting(Date.now() + graceMs);
    const runner = this.#session?.runner;
    if (runner && runner.active > 0) {
      logger.info({ running: runner.active, graceMs }, "quitting: waiting for the running tasks");
      state?.event(
        "info",
        `quitting: waiting up to ${Math.round(graceMs / 1000)} s for ${runner.active} running task(s)`,
      );
      await Promise.race([
        runner.idle(),
        abortableSleep(graceMs, AbortSignal.any([this.#handBackNow.signal, this.#stop.signal])),
      ]);
      if (runner.active > 0) {
        logger.info({ running: runner.active }, "quitting: handing the running tasks back to the coordinator");
        state?.event("warn", `handing ${runner.active} task(s) back to the coordinator`);
        runner.handBackAll("the node is shutting down; the coordinator re-routes the task");
        await Promise.race([runner.idle(), abortableSleep(CLOSE_TIMEOUT_MS, this.#stop.signal)]);
      }
    } else {
      state?.event("info", "quitting: no task running");
    }
    const session = this.#session;
    if (session?.runner) {
      session.close();
      await Promise.race([session.ended, abortableSleep(CLOSE_TIMEOUT_MS, this.#stop.signal)]);
    }
    this.#stop.abort();
  }

  /** Serves until stopped (signal or quit); throws RegistrationRefused when the coordinator refuses the node. */
  async run(): Promise<void> {
    const { options } = this;
    const { initialMs, maxMs } = options.backoff ?? { initialMs: 500, maxMs: 30_000 };
    const random = options.random ?? Math.random;
    const stop = this.#stop.signal;
    const coordinators = this.#coordinators;
    const tlsFaults = coordinators.urls.map((url) => new TlsFaultCounter(url));
    let refused = false;
    try {
      for (let attempt = 0; !stop.aborted && !this.#quitting; ) {
        options.state?.connecting(attempt);
        let registered = false;
        try {
          await this.#runSession(() => (registered = true));
          if (stop.aborted || this.#quitting) return;
          throw new ConnectError("the coordinator ended the stream", Code.Unavailable);
        } catch (err) {
          if (stop.aborted || this.#quitting) return;
          const error = ConnectError.from(err);
          if (
            !registered &&
            (error.code === Code.Unauthenticated ||
              error.code === Code.InvalidArgument ||
              error.code === Code.PermissionDenied)
          ) {
            refused = true;
            options.state?.refused(error.rawMessage);
            throw new RegistrationRefused(error.code, error.rawMessage);
          }
          // a certificate or protocol fault is no lost connection: a few tries, then stop and say what is wrong
          const faults = tlsFaults[coordinators.index]!;
          if (registered) faults.reset();
          const fault = registered ? undefined : faults.fault(err);
          // with several coordinators the agent stops only when every one of them has such a fault
          if (fault && tlsFaults.every((counter) => counter.exhausted)) {
            refused = true; // the state keeps saying what is wrong, not "stopped"
            const final = await faults.final(err, fault);
            options.logger.error(
              { tlsFault: final.fault.kind, code: final.fault.code, url: this.coordinatorUrl },
              final.message,
            );
            options.state?.tlsFailed(final.message);
            throw final;
          }
          // the next coordinator of the list: the one that failed may be dead (a cluster serves the node from any);
          // attempt counts rounds through the list that registered nowhere, so the backoff grows per round
          const from = coordinators.current;
          const step = coordinators.advance(registered);
          attempt = registered ? 0 : step === "round" ? attempt + 1 : attempt;
          const inMs = step === "next" ? 0 : backoffDelay(Math.max(attempt, 1), initialMs, maxMs, random);
          if (coordinators.urls.length > 1)
            options.logger.info({ from, to: coordinators.current, inMs }, "moving to the next coordinator");
          const reason = fault?.message ?? error.rawMessage;
          options.logger.warn(
            { err: reason, code: fault?.code ?? Code[error.code], inMs },
            fault
              ? "TLS fault talking to the coordinator; trying again"
              : "connection to the coordinator lost; reconnecting",
          );
          options.state?.reconnecting(inMs, reason);
          await abortableSleep(inMs, stop);
        }
      }
    } finally {
      if (!refused) options.state?.stopped();
    }
  }

  async #runSession(onRegistered: () => void): Promise<void> {
    const { options } = this;
    const { identity, logger, state } = options;
    const outbox = new Channel<ConnectRequest>();
    const send = (message: OutgoingMessage) => outbox.push(create(ConnectRequestSchema, { message }));
    let ended!: () => void;
    const handle: SessionHandle = {
      heartbeat: () => {},
      close: () => {},
      ended: new Promise((resolve) => (ended = resolve)),
    };
    this.#session = handle;
    let runner: TaskRunner | undefined;
    let sessionKeys: SessionKeys | undefined;
    const stream = new AbortController();
    const onAbort = () => stream.abort();
    this.#stop.signal.addEventListener("abort", onAbort, { once: true });
    let heartbeat: NodeJS.Timeout | undefined;
    send({ case: "register", value: registerMessage(identity) });
    try {
      const nodeOptions = options.ca ? { ca: trustedWith(options.ca) } : undefined;
      const call = NodeService.method.connect;
      for await (const response of callBidi(this.coordinatorUrl, call, outbox, {
        signal: stream.signal,
        nodeOptions,
      })) {
        const m = response.message;
        if (m.case === "registerChallenge") {
          // proves this agent holds the key it registered with (a replayed register could not)
          const proof = registerProof(identity.key.privateKey, m.value.coordinatorPublicKey, {
            nonce: m.value.nonce,
            nodeId: identity.nodeId,
            nodePublicKey: identity.key.publicKey,
            coordinatorPublicKey: m.value.coordinatorPublicKey,
          });
          send({ case: "registerProof", value: { proof } });
        } else if (m.case === "registerAck") {
          const keys = (sessionKeys = deriveSessionKeys(identity.key.privateKey, m.value.coordinatorPublicKey, {
            coordinatorPublicKey: m.value.coordinatorPublicKey,
            nodePublicKey: identity.key.publicKey,
            nodeId: m.value.nodeId,
            sessionId: m.value.sessionId,
          }));
          const active = (runner = new TaskRunner(options.backend, send, logger, identity.maxConcurrentTasks, keys, {
            state,
            isPaused: () => this.#paused,
            outbox,
          }));
          handle.runner = active;
          handle.close = () => outbox.close();
          handle.heartbeat = () =>
            send({
              case: "heartbeat",
              value: {
                load: active.active / identity.maxConcurrentTasks,
                activeTasks: active.active,
                paused: this.#paused,
                // the latest readings (VRAM used, utilisation) for the dashboard; none when no GPU was found
                gpus: gpuMessages(state?.snapshot.gpus ?? []),
              },
            });
          onRegistered();
          logger.info(
            { nodeId: m.value.nodeId, tier: Tier[m.value.tier] ?? "UNSPECIFIED", reason: m.value.tierReason },
            "registered with the coordinator",
          );
          state?.registered({
            tier: Tier[m.value.tier] ?? "UNSPECIFIED",
            tierReason: m.value.tierReason,
            reputation: m.value.reputation,
          });
          // a paused node says so at once: registration alone makes it routable
          if (this.#paused) handle.heartbeat();
          heartbeat = setInterval(handle.heartbeat, m.value.heartbeatIntervalMs);
        } else if (m.case === "taskAssign") {
          // per task at debug: "task ended" (info) says how each went, one line per task on a busy node
          logger.debug({ taskId: m.value.taskId, maxTokens: m.value.maxTokens }, "task assigned");
          void runner?.start(m.value);
        } else if (m.case === "cancel") {
          logger.info({ taskId: m.value.taskId, reason: m.value.reason }, "task cancelled by the coordinator");
          runner?.cancel(m.value.taskId);
        } else if (m.case === "classifyAssign") {
          answerClassifyAssign(m.value, sessionKeys, options.backend, send, logger);
        } else if (m.case === "heartbeatAck") {
          state?.setReputation(m.value.reputation);
          if (m.value.tier !== Tier.UNSPECIFIED)
            state?.setTier({ name: Tier[m.value.tier] ?? "UNSPECIFIED", reason: m.value.tierReason });
          if (m.value.estimateMonth)
            state?.setEarnings({ month: m.value.estimateMonth, units: Number(m.value.estimatedMonthUnits) });
        }
      }
    } finally {
      clearInterval(heartbeat);
      this.#stop.signal.removeEventListener("abort", onAbort);
      runner?.cancelAll();
      outbox.close();
      if (this.#session === handle) this.#session = undefined;
      ended();
    }
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
