-- Accounts, clients, signing keys and settings. Forward only: never edit once applied.

CREATE TABLE accounts (
  id uuid PRIMARY KEY,
  -- As the administrator typed it, trimmed; shown in pages and the preferred_username claim.
  username text NOT NULL,
  -- Trimmed, NFKC-normalised and case-folded; what uniqueness and sign-in lookups use.
  username_canonical text NOT NULL,
  email text,
  name text,
  password_hash text NOT NULL,
  disabled boolean NOT NULL DEFAULT false,
  password_changed_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT accounts_username_canonical_key UNIQUE (username_canonical)
);

CREATE TABLE clients (
  client_id text PRIMARY KEY,
  name text,
  -- oidc-provider client metadata without the secret.
  metadata jsonb NOT NULL,
  -- The client secret, encrypted with IDP_ENCRYPTION_KEY; NULL for public clients.
  secret_ciphertext text,
  require_2fa boolean NOT NULL DEFAULT false,
  consent boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE signing_keys (
  kid text PRIMARY KEY,
  alg text NOT NULL,
  state text NOT NULL CHECK (state IN ('next', 'active', 'retired')),
  -- The private JWK, encrypted with IDP_ENCRYPTION_KEY.
  jwk_ciphertext text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  activated_at timestamptz,
  retired_at timestamptz
);

CREATE TABLE settings (
  name text PRIMARY KEY,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text
);
