-- 0006_requests: the network's request totals count what users asked, not the rows behind them; and the
-- unused 0001 table rate_limits goes (0004's chat_admissions replaced it).

-- A user's request is a task without a parent that is not a canary: the parts of a divided request and the
-- spot checks of a single one are children (parent_id), canaries are the network's own questions. The
-- dashboard counts completed and failed requests every few seconds (coordinator/network/stats.ts).
CREATE INDEX tasks_requests_status_idx ON tasks (status) WHERE parent_id IS NULL AND classifier IS DISTINCT FROM 'canary';

DROP TABLE rate_limits;
