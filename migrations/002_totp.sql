-- TOTP second factor and recovery codes. Forward only: never edit once applied.

CREATE TABLE totp_credentials (
  account_id uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
  -- The 160-bit secret, encrypted with IDP_ENCRYPTION_KEY under the context 'totp:<account id>'.
  secret_ciphertext text NOT NULL,
  -- The RFC 6238 time step of the last accepted code. A code of this step or an earlier one is
  -- rejected, and acceptance is a compare-and-set on this column, so a code works once only.
  last_step bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz
);

CREATE TABLE recovery_codes (
  account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  -- SHA-256 of '<account id>:<code>'; the codes themselves are shown once and never stored.
  code_hash text NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, code_hash)
);
