// What the agent's terminal UI reads: one immutable snapshot of the agent (agent/state.ts writes it), with its
// connection, model, readings, live tasks, totals and recent events.
import type { Gpu } from "./gpu.ts";

export type ConnectionStatus =
  | { kind: "starting" }
  | { kind: "connecting"; attempt: number }
  | { kind: "registered"; since: number }
  /** `at`: when the next attempt starts. */
  | { kind: "reconnecting"; at: number; inMs: number; error: string }
  | { kind: "refused"; error: string }
  /** A certificate or protocol fault the agent stopped on (agent/tls-faults.ts). */
  | { kind: "tls"; error: string }
  | { kind: "stopped" };

export interface LiveTask {
  taskId: string;
  /** SIMPLE, COMPLEX or ADVANCED ("" when the coordinator did not say). */
  difficulty: string;
  tokens: number;
  maxTokens: number;
  startedAt: number;
  firstTokenAt?: number;
}

export type EventLevel = "info" | "warn" | "error";
export interface AgentEvent {
  at: number;
  level: EventLevel;
  text: string;
}

/** The machine itself: what a CPU node runs on, and what else competes with the model for memory. */
export interface HostReading {
  cores: number;
  load1: number;
  memoryUsedMb: number;
  memoryTotalMb: number;
}

export interface ModelView {
  name: string;
  parameterCount: number;
  quantization: string;
  contextLength: number;
}

export type TaskOutcome = "completed" | "failed" | "cancelled" | "handed_back";

export interface Totals {
  completed: number;
  failed: number;
  /** Stopped by the coordinator (client gone, deadline). */
  cancelled: number;
  /** Given back to the coordinator on quit, to run elsewhere. */
  handedBack: number;
  /** Assignments refused (full or paused); the coordinator re-routes them. */
  refused: number;
  /** Tokens generated for tasks, whatever their end. */
  tokens: number;
}

export interface AgentSnapshot {
  version: string;
  nodeId: string;
  /** Only the last four digits survive: the key is a secret. */
  accountKeyMasked: string;
  coordinatorUrl: string;
  /** What start-up is doing ("loading the model"); "" once it is done. */
  stage: string;
  connection: ConnectionStatus;
  tier?: { name: string; reason: string };
  reputation?: number;
  /** The account's share of this month's pool if the month ended now (from heartbeat acks). */
  earnings?: { month: string; units: number };
  backend: string;
  model?: ModelView;
  benchmarkTokensPerSecond?: number;
  gpus: readonly Gpu[];
  host?: HostReading;
  /** When the GPU and host readings were taken. */
  readingsAt?: number;
  maxConcurrentTasks: number;
  tasks: readonly LiveTask[];
  totals: Totals;
  paused: boolean;
  quitting?: { since: number; deadline: number };
  events: readonly AgentEvent[];
}
