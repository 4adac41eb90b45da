-- Client uploads (the authorization API): API keys, their request counters, an issuance audit,
-- and what a job needs when a client app, not the worker, uploads its bytes.

-- A key is shown once; only its SHA-256 is kept (a key holds 165 random bits, so a fast hash is
-- enough: there is nothing to brute-force).
CREATE TABLE api_keys (
    key_id              text PRIMARY KEY,
    name                text NOT NULL,
    secret_sha256       text NOT NULL,
    kinds               text[] NOT NULL,
    max_file_size       bigint NOT NULL CHECK (max_file_size > 0),
    requests_per_minute integer NOT NULL CHECK (requests_per_minute > 0),
    allowed_origins     text[] NOT NULL DEFAULT '{}',
    allow_sts           boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz,
    revoked_at          timestamptz
);

-- Requests per key per minute, shared by every process that serves the API.
CREATE TABLE api_key_usage (
    key_id       text NOT NULL REFERENCES api_keys (key_id) ON DELETE CASCADE,
    window_start timestamptz NOT NULL,
    requests     integer NOT NULL,
    PRIMARY KEY (key_id, window_start)
);

-- Who was handed what: never the credential itself.
CREATE TABLE api_audit (
    id          bigserial PRIMARY KEY,
    key_id      text NOT NULL,
    action      text NOT NULL,
    job_id      text,
    media_id    text,
    client_addr text,
    http_origin text,
    outcome     text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_audit_key ON api_audit (key_id, at);

ALTER TABLE ingest_jobs DROP CONSTRAINT ingest_jobs_state_check;
ALTER TABLE ingest_jobs ADD CONSTRAINT ingest_jobs_state_check CHECK (state IN
    ('queued', 'awaiting_upload', 'uploading', 'retrying', 'uploaded', 'completed', 'failed', 'cancelled'));
ALTER TABLE ingest_jobs ADD CONSTRAINT ingest_jobs_origin_check CHECK (origin IN ('queue', 'cli', 'client', 'sts'));
-- The key that asked for a client upload, and the size limit that applied when it did (checked
-- again against the size VOD reports once the upload is complete).
ALTER TABLE ingest_jobs ADD COLUMN api_key_id text;
ALTER TABLE ingest_jobs ADD COLUMN max_file_size bigint;
ALTER TABLE ingest_jobs ADD COLUMN credential_expires_at timestamptz;
CREATE INDEX ingest_jobs_awaiting ON ingest_jobs (updated_at) WHERE state = 'awaiting_upload';
