-- 0007_coordinator_instances: which coordinator ran each task, and which coordinators are alive, so that the tasks
-- and node sessions of one that died (SIGKILL, a crash, a lost machine) are ended with a reason instead of staying
-- open forever (coordinator/instances/liveness.ts, docs/faults.md).

-- NULL on tasks written before this migration: nobody can tell which coordinator ran them.
ALTER TABLE tasks ADD COLUMN coordinator_instance text;

-- Recovery looks for one instance's unfinished tasks; few tasks are unfinished at any time, so the index stays small.
CREATE INDEX tasks_open_by_coordinator_idx ON tasks (coordinator_instance)
  WHERE status IN ('queued', 'assigned', 'streaming');

-- A heartbeat per running coordinator. Times come from the database's clock (now()), so coordinators whose
-- clocks disagree still agree on who is stale.
CREATE TABLE coordinator_instances (
  instance text PRIMARY KEY CHECK (length(instance) BETWEEN 1 AND 200),
  started_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now()
);
