-- 0005_spot_checks: what spot checks, canaries and consensus need to keep a node from work after repeated
-- mismatches, until an admin clears it (NetworkService.ClearNode).

-- Mismatches since the node was last cleared: each consensus minority answer, failed spot check and failed
-- canary adds one (coordinator/nodes/suspension.ts). The reputation penalty and the evidence (both outputs'
-- hashes) live in reputation_events; this counter only decides suspension and is reset by a clear.
ALTER TABLE nodes ADD COLUMN mismatches integer NOT NULL DEFAULT 0 CHECK (mismatches >= 0);

-- When the node was suspended; NULL while it may take work. Set in the same UPDATE that counts the mismatch
-- reaching the limit, so concurrent mismatches cannot both miss it.
ALTER TABLE nodes ADD COLUMN suspended_at timestamptz;

-- The dashboard and routing at registration ask "is it suspended"; few ever are.
CREATE INDEX nodes_suspended_idx ON nodes (id) WHERE suspended_at IS NOT NULL;
