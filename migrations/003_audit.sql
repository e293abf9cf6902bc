-- The security audit log. Forward only: never edit once applied.

CREATE TABLE audit_events (
  -- Gapless and in chain order: each writer takes the previous row under an advisory lock.
  id bigint PRIMARY KEY,
  occurred_at timestamptz NOT NULL,
  event text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('success', 'failure')),
  account_id uuid,
  -- The account's username, or for an unknown user what was typed, trimmed.
  username text,
  client_id text,
  ip text,
  user_agent text,
  request_id text,
  -- Small details such as the reason of a failure; never a secret.
  detail jsonb NOT NULL DEFAULT '{}',
  -- sha256 (hex) of the previous row's hash and this row's content; see src/security/audit.ts.
  prev_hash text NOT NULL,
  hash text NOT NULL
);

CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);
CREATE INDEX audit_events_account_id ON audit_events (account_id);
CREATE INDEX audit_events_event ON audit_events (event);

-- Rows are only ever added. The trigger stops the application's own role too, which owns the
-- table and so is not stopped by privileges alone.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_no_change
  BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate
  BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;
