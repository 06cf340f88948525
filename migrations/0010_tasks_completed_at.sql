-- 0010_tasks_completed_at: the completed tasks by when they ended. The month-to-date earnings estimate
-- (coordinator/economics/estimate.ts) reads, every EARNINGS_ESTIMATE_MS, the work that ended since its last read, and
-- the monthly payout one month's work (coordinator/economics/payouts.ts): without this index each of them scanned the
-- whole tasks table, so an estimate cost more every minute as the table grew.
CREATE INDEX tasks_completed_at_idx ON tasks (completed_at) WHERE status = 'completed';
