-- 0008_measured_capability: what the coordinator measured of each node, beside what the node declared
-- (docs/concepts/tiers.md, "How capability is verified"): a node's tier rests on its measured speed when that
-- contradicts its benchmark, and the measurements must outlive a reconnect, or reconnecting would wipe the
-- contradiction.

-- The model file's fingerprint the node declared (hex SHA-256, Register.model_sha256); NULL when it sent none.
ALTER TABLE nodes ADD COLUMN model_sha256 text CHECK (model_sha256 ~ '^[0-9a-f]{64}$');

-- Speed samples (tokens/s of the latest answers), the largest context it completed, the smallest prompt it refused
-- as too long, and the last canary comparison with a peer: a MeasuredSnapshot, kept for one model (the "model" key;
-- a node that registers with another model starts afresh). NULL until the first measurement is written.
ALTER TABLE nodes ADD COLUMN measured jsonb;
