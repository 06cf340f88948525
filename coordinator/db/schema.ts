// The typed Kysely view of migrations/*.sql: one interface per table, column for column.
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from "kysely";
import type { Difficulty, DivisionMode, NodeTier, UserRole } from "../../common/vocabulary.ts";
import { storableJson } from "./recordset.ts";

/*
 * JS types, identical on both drivers (connect.ts installs the same parsers on pg and PGlite):
 *   bigint / bigserial (int8) -> number. Every int8 here (parameter counts, payout units, event ids,
 *       count(*)) stays far below 2^53; a value outside Number's safe range makes the query throw a
 *       RangeError instead of silently losing digits.
 *   numeric                   -> string, the exact decimal text; convert where arithmetic is needed.
 *   timestamptz               -> Date (millisecond precision; PostgreSQL keeps microseconds).
 *   jsonb                     -> the parsed JSON value. Written through `json(value)`: pg would turn a
 *       JS array into a PostgreSQL array literal, so jsonb parameters are always sent as JSON text.
 *   bytea                     -> Buffer.
 *   integer, double precision -> number; uuid, text -> string.
 */

/** A timestamptz the database fills in by default. */
type CreatedAt = ColumnType<Date, Date | undefined, Date>;
/** A timestamptz that may be NULL. */
type NullableTimestamp = ColumnType<Date | null, Date | null | undefined, Date | null>;
/** numeric: exact decimal text out; numbers or decimal strings in. */
type Numeric = ColumnType<string, string | number, string | number>;

declare const jsonText: unique symbol;
/** JSON text destined for a jsonb column of type T; only `json()` makes one. */
export type JsonText<T> = string & { readonly [jsonText]: T };
/** Encodes a value for a jsonb column (see the note on jsonb above; a NUL in a string is stored as U+FFFD). */
export function json<T>(value: T): JsonText<T> {
  return storableJson(value) as JsonText<T>;
}
type JsonWithDefault<T> = ColumnType<T, JsonText<T> | undefined, JsonText<T>>;
type NullableJson<T> = ColumnType<T | null, JsonText<T> | null | undefined, JsonText<T> | null>;

// The CHECK-constrained vocabularies, kept in the same order as in the SQL (difficulty, tier, user role and
// division mode live in common/vocabulary.ts).
export const NODE_STATUSES = ["online", "offline"] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];
export const TASK_STATUSES = ["queued", "assigned", "streaming", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const REPUTATION_RULES = [
  "task_completed",
  "fast_completion",
  "timeout",
  "invalid_response",
  "uptime",
  "broken_promise",
  "weekly_decay",
  "admin",
] as const;
export type ReputationRule = (typeof REPUTATION_RULES)[number];

/** One GPU as the agent reports it (nodes.gpus is a list of these). */
export interface GpuInfo {
  name: string;
  vram_mb: number;
}

/** Anything JSON can hold; the shape of promised hours and evidence belongs to their domains. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface AccountsTable {
  id: Generated<string>;
  key_hash: string;
  label: string | null;
  created_at: CreatedAt;
  revoked_at: NullableTimestamp;
}

export interface UsersTable {
  id: Generated<string>;
  /** Always lowercase: the CHECK rejects anything else, so lowercase before inserting. */
  email: string;
  password_hash: string;
  role: ColumnType<UserRole, UserRole | undefined, UserRole>;
  account_id: string | null;
  created_at: CreatedAt;
}

export interface NodesTable {
  id: string;
  account_id: string;
  tier: NodeTier;
  model_name: string;
  parameter_count: number;
  quantization: string | null;
  context_length: number | null;
  tokens_per_second: number;
  max_concurrent_tasks: ColumnType<number, number | undefined, number>;
  gpus: JsonWithDefault<GpuInfo[]>;
  public_key: Buffer | null;
  agent_version: string;
  promised_hours: NullableJson<JsonValue>;
  reputation: ColumnType<number, number | undefined, number>;
  status: ColumnType<NodeStatus, NodeStatus | undefined, NodeStatus>;
  first_seen_at: CreatedAt;
  last_seen_at: CreatedAt;
}

export interface NodeSessionsTable {
  id: Generated<string>;
  node_id: string;
  coordinator_instance: string;
  remote_address: string | null;
  connected_at: CreatedAt;
  disconnected_at: NullableTimestamp;
  disconnect_reason: string | null;
}

export interface TasksTable {
  id: Generated<string>;
  parent_id: string | null;
  status: ColumnType<TaskStatus, TaskStatus | undefined, TaskStatus>;
  difficulty: Difficulty;
  tier: NodeTier | null;
  division_mode: ColumnType<DivisionMode, DivisionMode | undefined, DivisionMode>;
  classifier: string | null;
  node_id: string | null;
  account_id: string | null;
  user_id: string | null;
  client_address: string | null;
  prompt_tokens: ColumnType<number, number | undefined, number>;
  completion_tokens: ColumnType<number, number | undefined, number>;
  max_tokens: number | null;
  attempt: ColumnType<number, number | undefined, number>;
  created_at: CreatedAt;
  assigned_at: NullableTimestamp;
  first_token_at: NullableTimestamp;
  completed_at: NullableTimestamp;
  deadline_at: NullableTimestamp;
  ttft_ms: number | null;
  total_ms: number | null;
  failure_reason: string | null;
}

export interface TaskEventsTable {
  id: Generated<number>;
  task_id: string;
  status: TaskStatus;
  node_id: string | null;
  detail: string | null;
  at: CreatedAt;
}

export interface ReputationEventsTable {
  id: Generated<number>;
  node_id: string;
  account_id: string;
  rule: ReputationRule;
  delta: number;
  task_id: string | null;
  period_key: string | null;
  evidence: NullableJson<JsonValue>;
  created_at: CreatedAt;
}

export interface PayoutRunsTable {
  /** 'YYYY-MM'. */
  month: string;
  pool: number;
  total_contribution: Numeric;
  created_at: CreatedAt;
}

export interface PayoutsTable {
  month: string;
  account_id: string;
  amount: number;
  contribution: Numeric;
  /** Fraction of the pool in [0, 1]. */
  share: Numeric;
  created_at: CreatedAt;
}

export interface Database {
  accounts: AccountsTable;
  users: UsersTable;
  nodes: NodesTable;
  node_sessions: NodeSessionsTable;
  tasks: TasksTable;
  task_events: TaskEventsTable;
  reputation_events: ReputationEventsTable;
  payout_runs: PayoutRunsTable;
  payouts: PayoutsTable;
  login_failures: LoginFailuresTable;
}

export type NodeRow = Selectable<NodesTable>;
export type TaskRow = Selectable<TasksTable>;
export type NewTask = Insertable<TasksTable>;
export type TaskUpdate = Updateable<TasksTable>;
export type ReputationEventRow = Selectable<ReputationEventsTable>;
export type NewReputationEvent = Insertable<ReputationEventsTable>;

/** One failed login per subject (0002_login_attempts.sql); subject is "email:<sha256>" or "address:<sha256>". */
export interface LoginFailuresTable {
  id: Generated<number>;
  subject: string;
  failed_at: Date;
}

// 0003_reputation: columns added to existing tables (interface merging keeps the lines above untouched).
export interface ReputationEventsTable {
  /** The node's score right after the event; written by the reputation ledger, NULL on rows written otherwise. */
  reputation_after: number | null;
}

export interface NodesTable {
  /** When the current promised_hours were first declared; kept by a trigger (NULL without a promise). */
  promised_hours_since: NullableTimestamp;
}

/** Chat admissions per rate-limit subject (0004_rate_limits.sql); written by coordinator/limits/chat-limits.ts. */
export interface ChatAdmissionsTable {
  subject: string;
  /** The times of the messages admitted in the last 24 hours (older ones are trimmed on the next admission). */
  admitted_at: Date[];
  expires_at: Date;
}

export interface Database {
  chat_admissions: ChatAdmissionsTable;
}

// 0005_spot_checks: suspension after repeated mismatches (written by coordinator/nodes/suspension.ts).
export interface NodesTable {
  /** Consensus, spot-check and canary mismatches since the node was last cleared. */
  mismatches: ColumnType<number, number | undefined, number>;
  /** When the node was suspended (no work until an admin clears it); NULL when it may take work. */
  suspended_at: NullableTimestamp;
}

// 0007_coordinator_instances: which coordinator ran each task, and which coordinators are alive
// (coordinator/instances/).
export interface TasksTable {
  /** The coordinator instance that ran the task; NULL on tasks written before 0007. */
  coordinator_instance: ColumnType<string | null, string | null | undefined, string | null>;
}

/** One row per running coordinator, refreshed every INSTANCE_HEARTBEAT_MS; a stale row is a dead coordinator. */
export interface CoordinatorInstancesTable {
  instance: string;
  started_at: CreatedAt;
  last_seen_at: CreatedAt;
}

export interface Database {
  coordinator_instances: CoordinatorInstancesTable;
}

// 0008_measured_capability: what the coordinator measured of each node (coordinator/nodes/measurements.ts).
export interface NodesTable {
  /** The model file's fingerprint the node declared (Register.model_sha256); NULL when none. */
  model_sha256: ColumnType<string | null, string | null | undefined, string | null>;
  /** Speed samples, proven and refused context, the last canary comparison (MeasuredSnapshot); NULL before any. */
  measured: NullableJson<JsonValue>;
}

// 0009_journal_batches: the marks of task journal batches written as one statement (coordinator/tasks/).
export interface JournalBatchesTable {
  id: string;
  /** The coordinator instance whose journal wrote it; NULL for a journal without one. */
  instance: ColumnType<string | null, string | null | undefined, string | null>;
  written_at: CreatedAt;
}

export interface Database {
  journal_batches: JournalBatchesTable;
}
