-- Key rotation: a key in state 'next' is published at once and starts signing at activate_at.
-- One active and at most one next key per algorithm. Forward only: never edit once applied.

ALTER TABLE signing_keys ADD COLUMN activate_at timestamptz;

CREATE UNIQUE INDEX signing_keys_one_active_per_alg ON signing_keys (alg) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next_per_alg ON signing_keys (alg) WHERE state = 'next';
