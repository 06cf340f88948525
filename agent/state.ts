// The agent's observable state: everything the terminal UI shows, written by start-up, the connection and the task
// runner, read by subscribers as immutable snapshots with notifications throttled to ~10 a second.
import type {
  AgentEvent,
  AgentSnapshot,
  EventLevel,
  HostReading,
  LiveTask,
  ModelView,
  TaskOutcome,
} from "./snapshot.ts";
import type { Gpu } from "./gpu.ts";

export const EVENT_LOG_LENGTH = 50;

/** `**** **** **** 3456` from 16 digits (with or without spaces). */
export function maskAccountKey(key: string): string {
  const digits = key.replace(/\D/g, "");
  return digits.length < 4 ? "****" : `**** **** **** ${digits.slice(-4)}`;
}

export interface AgentStateOptions {
  now?: () => number;
  /** Least time between two notifications. Default 100 ms. */
  intervalMs?: number;
  /** Runs `fn` after `ms`; returns a cancel. Default: an unref'd setTimeout. */
  schedule?: (fn: () => void, ms: number) => () => void;
}

const defaultSchedule = (fn: () => void, ms: number) => {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
};

type Draft = { -readonly [K in keyof AgentSnapshot]: AgentSnapshot[K] } & { tasks: LiveTask[]; events: AgentEvent[] };

export class AgentState {
  readonly #draft: Draft;
  #snapshot: AgentSnapshot | undefined;
  readonly #listeners = new Set<() => void>();
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #schedule: NonNullable<AgentStateOptions["schedule"]>;
  #pending: (() => void) | undefined;
  #lastNotified = -Infinity;
  #lastPublished: AgentSnapshot | undefined;

  constructor(
    initial: {
      version: string;
      nodeId: string;
      accountKey: string;
      coordinatorUrl: string;
      backend: string;
      maxConcurrentTasks: number;
    },
    options: AgentStateOptions = {},
  ) {
    this.#now = options.now ?? Date.now;
    this.#intervalMs = options.intervalMs ?? 100;
    this.#schedule = options.schedule ?? defaultSchedule;
    this.#draft = {
      version: initial.version,
      nodeId: initial.nodeId,
      accountKeyMasked: maskAccountKey(initial.accountKey),
      coordinatorUrl: initial.coordinatorUrl,
      stage: "starting",
      connection: { kind: "starting" },
      backend: initial.backend,
      gpus: [],
      maxConcurrentTasks: initial.maxConcurrentTasks,
      tasks: [],
      totals: { completed: 0, failed: 0, cancelled: 0, handedBack: 0, refused: 0, tokens: 0 },
      paused: false,
      events: [],
    };
  }

  /** The current state, frozen; the same object until something changes. */
  get snapshot(): AgentSnapshot {
    if (!this.#snapshot) {
      const d = this.#draft;
      this.#snapshot = Object.freeze({
        ...d,
        tasks: Object.freeze(d.tasks.map((t) => Object.freeze({ ...t }))),
        totals: Object.freeze({ ...d.totals }),
        events: Object.freeze([...d.events]),
        gpus: Object.freeze([...d.gpus]),
      });
    }
    return this.#snapshot;
  }

  /** Calls `listener` (at most every intervalMs) after changes; returns the unsubscribe. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Notifies now if anything changed since the last notification (before exit, and in tests). */
  flush(): void {
    this.#pending?.();
    this.#pending = undefined;
    this.#notify();
  }

  #changed(): void {
    this.#snapshot = undefined;
    // coalesce: one pending notification at a time, no sooner than intervalMs after the last
    if (this.#pending) return;
    const wait = Math.max(0, this.#lastNotified + this.#intervalMs - this.#now());
    this.#pending = this.#schedule(() => {
      this.#pending = undefined;
      this.#notify();
    }, wait);
  }

  #notify(): void {
    const snapshot = this.snapshot;
    if (snapshot === this.#lastPublished) return;
    this.#lastPublished = snapshot;
    this.#lastNotified = this.#now();
    for (const listener of this.#listeners) listener();
  }

  #update(change: (d: Draft) => void): void {
    change(this.#draft);
    this.#changed();
  }

  event(level: EventLevel, text: string): void {
    this.#update((d) => {
      d.events.push({ at: this.#now(), level, text });
      if (d.events.length > EVENT_LOG_LENGTH) d.events.splice(0, d.events.length - EVENT_LOG_LENGTH);
    });
  }

  // start-up

  setStage(stage: string): void {
    this.#update((d) => void (d.stage = stage));
    if (stage) this.event("info", stage);
  }
  setModel(model: ModelView): void {
    this.#update((d) => void (d.model = { ...model }));
  }
  setBenchmark(tokensPerSecond: number): void {
    this.#update((d) => void (d.benchmarkTokensPerSecond = tokensPerSecond));
  }
  setReadings(gpus: readonly Gpu[], host?: HostReading): void {
    this.#update((d) => {
      d.gpus = gpus.map((g) => ({ ...g }));
      d.host = host;
      d.readingsAt = this.#now();
    });
  }

  // connection

  connecting(attempt: number): void {
    this.#update((d) => void (d.connection = { kind: "connecting", attempt }));
  }
  registered(ack: { tier: string; tierReason: string; reputation: number }): void {
    this.#update((d) => {
      d.stage = "";
      d.connection = { kind: "registered", since: this.#now() };
      d.tier = { name: ack.tier, reason: ack.tierReason };
      d.reputation = ack.reputation;
    });
    this.event("info", `registered with the coordinator: tier ${ack.tier}, reputation ${ack.reputation.toFixed(1)}`);
  }
  reconnecting(inMs: number, error: string): void {
    // a registered session that broke, or one more attempt that never got that far
    const what = this.#draft.connection.kind === "registered" ? "connection lost" : "cannot connect";
    this.#update((d) => void (d.connection = { kind: "reconnecting", at: this.#now() + inMs, inMs, error }));
    this.event("warn", `${what}: ${error}; retry in ${(inMs / 1000).toFixed(1)} s`);
  }
  refused(error: string): void {
    this.#update((d) => void (d.connection = { kind: "refused", error }));
    this.event("error", `refused by the coordinator: ${error}`);
  }
  tlsFailed(error: string): void {
    this.#update((d) => void (d.connection = { kind: "tls", error }));
    this.event("error", `TLS: ${error}`);
  }
  stopped(): void {
    this.#update((d) => void (d.connection = { kind: "stopped" }));
  }
  setReputation(reputation: number): void {
    if (this.#draft.reputation === reputation) return; // every heartbeat ack repeats it
    this.#update((d) => void (d.reputation = reputation));
  }
  /** The coordinator re-tiered the node (its measured speed contradicts its benchmark, or agrees again). */
  setTier(tier: { name: string; reason: string }): void {
    const now = this.#draft.tier;
    if (now?.name === tier.name) return; // every heartbeat ack repeats it; the reason's figures drift with samples
    this.#update((d) => void (d.tier = tier));
    this.event("warn", `re-tiered by the coordinator: ${tier.name} (${tier.reason})`);
  }
  setEarnings(earnings: { month: string; units: number }): void {
    const now = this.#draft.earnings;
    if (now?.month === earnings.month && now.units === earnings.units) return;
    this.#update((d) => void (d.earnings = { ...earnings }));
  }

  // operator

  setPaused(paused: boolean): void {
    if (this.#draft.paused === paused) return;
    this.#update((d) => void (d.paused = paused));
    this.event("info", paused ? "paused: taking no new tasks" : "resumed: taking tasks");
  }
  quitting(deadline: number): void {
    this.#update((d) => void (d.quitting = { since: this.#now(), deadline }));
  }

  // tasks

  taskStarted(task: { taskId: string; difficulty: string; maxTokens: number }): void {
    this.#update((d) => void d.tasks.push({ ...task, tokens: 0, startedAt: this.#now() }));
    this.event("info", `task ${shortId(task.taskId)} ${task.difficulty || "?"} started (max ${task.maxTokens} tokens)`);
  }
  /** A piece of a running task's answer, of `tokens` tokens (the engine may release several at once). */
  taskToken(taskId: string, tokens = 1): void {
    const task = this.#draft.tasks.find((t) => t.taskId === taskId);
    if (!task) return;
    task.firstTokenAt ??= this.#now();
    this.#count(task, task.tokens + tokens);
  }
  /** The task's usage as reported to the coordinator, which records it: the live count becomes exactly that. */
  taskUsage(taskId: string, completionTokens: number): void {
    const task = this.#draft.tasks.find((t) => t.taskId === taskId);
    if (task && task.tokens !== completionTokens) this.#count(task, completionTokens);
  }
  #count(task: LiveTask, tokens: number): void {
    this.#draft.totals.tokens += tokens - task.tokens;
    task.tokens = tokens;
    this.#changed();
  }
  taskEnded(taskId: string, outcome: TaskOutcome, detail?: string): void {
    const task = this.#draft.tasks.find((t) => t.taskId === taskId);
    this.#update((d) => {
      d.tasks = d.tasks.filter((t) => t.taskId !== taskId);
      const key = (
        { completed: "completed", failed: "failed", cancelled: "cancelled", handed_back: "handedBack" } as const
      )[outcome];
      d.totals[key]++;
    });
    const seconds = task ? ((this.#now() - task.startedAt) / 1000).toFixed(1) : "?";
    const what = `task ${shortId(taskId)} ${outcome.replace("_", " ")}: ${task?.tokens ?? 0} tokens in ${seconds} s`;
    this.event(
      outcome === "failed" ? "error" : outcome === "completed" ? "info" : "warn",
      detail ? `${what} (${detail})` : what,
    );
  }
  taskRefused(taskId: string, why: string): void {
    this.#update((d) => void d.totals.refused++);
    this.event("warn", `task ${shortId(taskId)} refused: ${why}`);
  }
}

/** Task ids are UUIDs; the first 8 hex digits tell them apart on one node. */
export function shortId(taskId: string): string {
  return taskId.slice(0, 8);
}
