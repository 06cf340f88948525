-- 0004_rate_limits: chat admissions per subject for the 24-hour rolling limits, shared by every coordinator on this database.
-- One row per subject ('ip:<address or /64>', 'account:<uuid>', 'user:<uuid>'), holding the times of the
-- messages it was admitted in the last 24 hours (see coordinator/limits/chat-limits.ts). One row rather than
-- one row per message so that admitting is one INSERT ... ON CONFLICT DO UPDATE: PostgreSQL locks the
-- subject's row and evaluates the limit against its newest version, which makes the check and the charge
-- atomic across coordinators without a transaction or advisory lock.
-- The 0001 table rate_limits (fixed windows with a count) is not used by this design.
CREATE TABLE chat_admissions (
  subject text PRIMARY KEY CHECK (subject ~ '^(ip|account|user):.+$'),
  admitted_at timestamptz[] NOT NULL,
  -- The newest admission plus the window: after it the row says nothing (a give-back never lowers it).
  expires_at timestamptz NOT NULL
);
-- Lets the pruner delete expired subjects without scanning every row.
CREATE INDEX chat_admissions_expires_at_idx ON chat_admissions (expires_at);
