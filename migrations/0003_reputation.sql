-- 0003_reputation: what the reputation ledger and scheduler need beyond 0001 (score after each event,
-- when a node's promise was made, a lookup of periodic events by period).

-- The node's score right after the event, written by coordinator/reputation/ledger.ts in the same
-- transaction that changes nodes.reputation, so a history reads it without summing all earlier events.
-- NULL only on rows written some other way (no code wrote events before the ledger existed).
ALTER TABLE reputation_events ADD COLUMN reputation_after double precision
  CHECK (reputation_after IS NULL OR reputation_after >= 10);

-- When the node's current promised_hours were first declared. The broken-promise rule judges only hours
-- after it. Kept by the trigger below rather than by the registration code: every registration rewrites
-- promised_hours, and re-declaring the same hours must not move it (or a node could escape a missed hour
-- by reconnecting before the scheduler judged that hour).
ALTER TABLE nodes ADD COLUMN promised_hours_since timestamptz;

-- Existing promises: they stood at least since the node's latest registration (its latest session).
UPDATE nodes SET promised_hours_since = COALESCE(
  (SELECT max(s.connected_at) FROM node_sessions s WHERE s.node_id = nodes.id), now())
WHERE promised_hours IS NOT NULL;

CREATE FUNCTION nodes_track_promise_since() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.promised_hours IS NULL THEN
    NEW.promised_hours_since := NULL;
  ELSIF TG_OP = 'INSERT' THEN
    -- An explicit value on insert is kept (imports, tests); otherwise the promise is made now.
    NEW.promised_hours_since := COALESCE(NEW.promised_hours_since, now());
  ELSIF NEW.promised_hours IS DISTINCT FROM OLD.promised_hours THEN
    NEW.promised_hours_since := now();
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER nodes_promise_since BEFORE INSERT OR UPDATE OF promised_hours ON nodes
  FOR EACH ROW EXECUTE FUNCTION nodes_track_promise_since();

-- The scheduler asks "which of these periods already have events" on every pass.
CREATE INDEX reputation_events_period_idx ON reputation_events (rule, period_key) WHERE period_key IS NOT NULL;

-- ...and which sessions overlap the last 48 hours (open ones are found by node_sessions_open_idx).
CREATE INDEX node_sessions_disconnected_at_idx ON node_sessions (disconnected_at) WHERE disconnected_at IS NOT NULL;
