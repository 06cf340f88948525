-- 0002_login_attempts: failed logins per email and per client address, shared by every coordinator on this database.
-- One row per failed attempt per subject (see coordinator/accounts/login-throttle.ts). subject is
-- 'email:' or 'address:' followed by a SHA-256 hex digest, never the email or address itself.
-- Rows older than the throttle window (15 minutes) are useless and are deleted by pruneLoginFailures.
CREATE TABLE login_failures (
  id bigserial PRIMARY KEY,
  subject text NOT NULL CHECK (subject ~ '^(email|address):[0-9a-f]{64}$'),
  failed_at timestamptz NOT NULL
);
-- The throttle's question: this subject's failures since the window start.
CREATE INDEX login_failures_subject_failed_at_idx ON login_failures (subject, failed_at);
-- Lets the pruner delete expired rows without scanning every subject.
CREATE INDEX login_failures_failed_at_idx ON login_failures (failed_at);
