-- 0001_init: the coordinator's first schema (accounts, users, nodes, sessions, tasks, reputation, payouts, rate limits).
-- Runs on PostgreSQL 15+ and on PGlite (PostgreSQL 17): core features only, no extensions.
-- Rules for every migration file: see coordinator/db/migrator.ts (split into statements, one transaction).
-- Foreign keys never cascade: tasks, reputation events and payouts are an audit trail, so the rows they
-- point at must outlive them (accounts are revoked, not deleted).

-- Anonymous Mullvad-style accounts. Only a digest of the 16-digit key is stored: 64 lowercase hex
-- characters, SHA-256 today or HMAC-SHA-256 with a server pepper later (same shape, same column).
CREATE TABLE accounts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key_hash text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  label text CHECK (label IS NULL OR length(label) <= 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);

-- Email/password users for the CLI. Emails are stored lowercased (enforced), so the plain UNIQUE
-- index is the case-insensitive uniqueness rule without needing citext.
CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '_%@_%' AND length(email) <= 320),
  password_hash text NOT NULL CHECK (length(password_hash) > 0),
  role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  account_id uuid REFERENCES accounts (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_account_id_idx ON users (account_id) WHERE account_id IS NOT NULL;

-- One row per operator-chosen NODE_ID; capabilities are overwritten on every registration.
CREATE TABLE nodes (
  id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
  account_id uuid NOT NULL REFERENCES accounts (id),
  tier text NOT NULL CHECK (tier IN ('BASIC', 'MID', 'PRO')),
  model_name text NOT NULL,
  parameter_count bigint NOT NULL CHECK (parameter_count >= 0),
  -- NULL when neither the model's name nor its metadata says (e.g. Q4_K_M, Q8_0, FP16).
  quantization text,
  -- NULL when the backend does not report it (many OpenAI-compatible servers do not).
  context_length integer CHECK (context_length IS NULL OR context_length > 0),
  tokens_per_second double precision NOT NULL CHECK (tokens_per_second >= 0),
  max_concurrent_tasks integer NOT NULL DEFAULT 1 CHECK (max_concurrent_tasks >= 1),
  -- List of {name, vram_mb}; empty for CPU-only nodes.
  gpus jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(gpus) = 'array'),
  -- The node's X25519 public key for payload encryption; NULL until the agent sends one.
  public_key bytea,
  agent_version text NOT NULL,
  -- The hours the operator promises to be online (shape owned by the reputation domain).
  promised_hours jsonb CHECK (promised_hours IS NULL OR jsonb_typeof(promised_hours) IN ('array', 'object')),
  -- The spec's floor: reputation never drops below 10, so a rule that would go lower must clamp.
  reputation double precision NOT NULL DEFAULT 100 CHECK (reputation >= 10),
  status text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline')),
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nodes_account_id_idx ON nodes (account_id);
CREATE INDEX nodes_status_tier_idx ON nodes (status, tier);
CREATE INDEX nodes_reputation_idx ON nodes (reputation DESC);

-- One row per NodeService.Connect stream: the source of uptime and broken-promise accounting.
CREATE TABLE node_sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  node_id text NOT NULL REFERENCES nodes (id),
  coordinator_instance text NOT NULL,
  remote_address text,
  connected_at timestamptz NOT NULL DEFAULT now(),
  disconnected_at timestamptz,
  disconnect_reason text,
  CHECK (disconnected_at IS NULL OR disconnected_at >= connected_at)
);
CREATE INDEX node_sessions_node_id_idx ON node_sessions (node_id, connected_at DESC);
-- Open sessions are what the hourly uptime rule scans; a partial index keeps that scan small.
CREATE INDEX node_sessions_open_idx ON node_sessions (node_id) WHERE disconnected_at IS NULL;

-- Chat requests and their parts (subtasks, consensus copies, context chunks point at parent_id).
CREATE TABLE tasks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  parent_id uuid REFERENCES tasks (id),
  status text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'assigned', 'streaming', 'completed', 'failed', 'cancelled')),
  difficulty text NOT NULL CHECK (difficulty IN ('SIMPLE', 'COMPLEX', 'ADVANCED')),
  tier text CHECK (tier IN ('BASIC', 'MID', 'PRO')),
  division_mode text NOT NULL DEFAULT 'single'
    CHECK (division_mode IN ('single', 'subtasks', 'consensus', 'context')),
  -- Which link of the classifier chain decided the difficulty (e.g. openrouter, node, rules).
  classifier text,
  node_id text REFERENCES nodes (id),
  account_id uuid REFERENCES accounts (id),
  user_id uuid REFERENCES users (id),
  client_address text,
  prompt_tokens integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
  completion_tokens integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
  -- NULL when the client did not ask for a limit.
  max_tokens integer CHECK (max_tokens IS NULL OR max_tokens > 0),
  attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  assigned_at timestamptz,
  first_token_at timestamptz,
  completed_at timestamptz,
  deadline_at timestamptz,
  ttft_ms integer CHECK (ttft_ms IS NULL OR ttft_ms >= 0),
  total_ms integer CHECK (total_ms IS NULL OR total_ms >= 0),
  failure_reason text,
  CHECK (parent_id IS NULL OR parent_id <> id),
  -- A failed task nobody can explain is useless to operators and to the reputation rules.
  CHECK (status <> 'failed' OR failure_reason IS NOT NULL)
);
CREATE INDEX tasks_status_idx ON tasks (status, created_at);
CREATE INDEX tasks_node_id_created_at_idx ON tasks (node_id, created_at);
CREATE INDEX tasks_created_at_idx ON tasks (created_at DESC);
CREATE INDEX tasks_parent_id_idx ON tasks (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX tasks_account_id_created_at_idx ON tasks (account_id, created_at) WHERE account_id IS NOT NULL;

-- Audit trail of task status transitions.
CREATE TABLE task_events (
  id bigserial PRIMARY KEY,
  task_id uuid NOT NULL REFERENCES tasks (id),
  status text NOT NULL
    CHECK (status IN ('queued', 'assigned', 'streaming', 'completed', 'failed', 'cancelled')),
  node_id text REFERENCES nodes (id),
  detail text,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_events_task_id_idx ON task_events (task_id, at);

-- Every reputation change, so a node's score can be audited and recomputed.
-- account_id is the node's account when the event happened (payouts follow it, not later relinks).
CREATE TABLE reputation_events (
  id bigserial PRIMARY KEY,
  node_id text NOT NULL REFERENCES nodes (id),
  account_id uuid NOT NULL REFERENCES accounts (id),
  rule text NOT NULL CHECK (rule IN (
    'task_completed', 'fast_completion', 'timeout', 'invalid_response',
    'uptime', 'broken_promise', 'weekly_decay', 'admin'
  )),
  delta double precision NOT NULL,
  task_id uuid REFERENCES tasks (id),
  -- Periodic rules (uptime hour, decay week) set a period key so each period applies once;
  -- NULL keys are distinct in a UNIQUE constraint, so event rules without a period are unaffected.
  period_key text,
  evidence jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT reputation_events_once_per_period UNIQUE (node_id, rule, period_key)
);
CREATE INDEX reputation_events_node_id_idx ON reputation_events (node_id, created_at DESC);
CREATE INDEX reputation_events_account_id_idx ON reputation_events (account_id, created_at DESC);
CREATE INDEX reputation_events_task_id_idx ON reputation_events (task_id) WHERE task_id IS NOT NULL;

-- One row per distributed month: inserting it first (same transaction as the payouts) is what makes
-- a month's distribution run at most once.
CREATE TABLE payout_runs (
  month text PRIMARY KEY CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
  pool bigint NOT NULL CHECK (pool >= 0),
  total_contribution numeric NOT NULL CHECK (total_contribution >= 0),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The ledger: each account's share of a month's pool, in integer units.
CREATE TABLE payouts (
  month text NOT NULL REFERENCES payout_runs (month),
  account_id uuid NOT NULL REFERENCES accounts (id),
  amount bigint NOT NULL CHECK (amount >= 0),
  contribution numeric NOT NULL CHECK (contribution >= 0),
  share numeric NOT NULL CHECK (share >= 0 AND share <= 1),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (month, account_id)
);
CREATE INDEX payouts_account_id_idx ON payouts (account_id, month);

-- Fixed-window counters for the per-24 h chat limits; subject is e.g. an address or an account id.
CREATE TABLE rate_limits (
  subject text NOT NULL,
  window_start timestamptz NOT NULL,
  count integer NOT NULL DEFAULT 0 CHECK (count >= 0),
  PRIMARY KEY (subject, window_start)
);
-- Lets a sweeper delete expired windows without scanning every subject.
CREATE INDEX rate_limits_window_start_idx ON rate_limits (window_start);
