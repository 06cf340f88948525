// The agent's link to the coordinator: one NodeService.Connect stream, registration, heartbeats, tasks, pause and
// graceful quit, and reconnection with exponential backoff and full jitter when the stream breaks.
import { Code, ConnectError } from "@connectrpc/connect";
import { CoordinatorList } from "./coordinator-list.ts";
import { NodeSession, type SessionOptions } from "./session.ts";
import { TlsFaultCounter } from "./tls-faults.ts";

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

export interface ConnectionOptions extends SessionOptions {
  /** COORDINATOR_URL: one URL, or several comma-separated (a cluster): the link moves to the next when one fails. */
  coordinatorUrl: string;
  /** Aborting stops at once: running tasks are dropped (the coordinator re-routes them when the stream ends). */
  signal: AbortSignal;
  backoff?: { initialMs: number; maxMs: number };
  random?: () => number;
}

/** Full jitter: a uniform delay up to the exponential bound, so a coordinator restart doesn't get a thundering herd. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  return Math.round(random() * Math.min(maxMs, initialMs * 2 ** attempt));
}

/** How long a quitting node waits for the coordinator to end the stream after it half-closes its side. */
const CLOSE_TIMEOUT_MS = 3_000;

/**
 * The node's link to the coordinator across reconnects. `run()` serves until stopped; `setPaused` stops or
 * resumes taking tasks; `quit` stops taking tasks, lets running ones finish, hands back the rest, and ends `run()`.
 */
export class CoordinatorLink {
  readonly #stop = new AbortController();
  #paused = false;
  #quitting: Promise<void> | undefined;
  readonly #handBackNow = new AbortController();
  #session: NodeSession | undefined;
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
    const session = new NodeSession(this.options, () => this.#paused);
    this.#session = session;
    const stream = new AbortController();
    const onAbort = () => stream.abort();
    this.#stop.signal.addEventListener("abort", onAbort, { once: true });
    try {
      await session.run(this.coordinatorUrl, stream.signal, onRegistered);
    } finally {
      this.#stop.signal.removeEventListener("abort", onAbort);
      if (this.#session === session) this.#session = undefined;
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
