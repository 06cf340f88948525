-- 0009_journal_batches: a mark per task journal batch written as one statement outside a transaction block
-- (coordinator/tasks/journal-batch.ts, writeBatchAlone). Its reply can be lost after the server committed it; a
-- retry writes the same mark first, and this primary key tells it whether the first try landed (waiting for a try
-- still in progress). Each journal deletes its previous mark with its next batch: about one row per coordinator.
CREATE TABLE journal_batches (
  id uuid PRIMARY KEY,
  written_at timestamptz NOT NULL DEFAULT now()
);
