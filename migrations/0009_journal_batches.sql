-- 0009_journal_batches: a mark per task journal batch written as one statement outside a transaction block
-- (coordinator/tasks/journal-batch.ts, writeBatchAlone). Its reply can be lost after the server committed it; a
-- retry writes the same mark first, and this primary key tells it whether the first try landed (waiting for a try
-- still in progress). Each journal deletes its previous mark with its next batch, and the marks of a coordinator
-- that stopped go when its tasks are ended (coordinator/tasks/recovery.ts): about one row per running coordinator.
CREATE TABLE journal_batches (
  id uuid PRIMARY KEY,
  -- the coordinator instance whose journal wrote it (NULL for a journal without one, in tests)
  instance text,
  written_at timestamptz NOT NULL DEFAULT now()
);
