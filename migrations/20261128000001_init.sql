-- Jobs: one row per upload job. The row is the job's truth (DESIGN.md, invariant 1).
CREATE TABLE ingest_jobs (
    job_id              text PRIMARY KEY,
    kind                text NOT NULL CHECK (kind IN ('video', 'image', 'attached_media')),
    state               text NOT NULL CHECK (state IN ('queued', 'uploading', 'retrying', 'uploaded', 'completed', 'failed', 'cancelled')),
    -- 'queue' for jobs taken from RabbitMQ, 'client' for uploads authorised for client apps.
    origin              text NOT NULL DEFAULT 'queue',
    source              text NOT NULL,
    title               text,
    file_name           text,
    -- The validated job message, as the producer sent it (never holds secrets).
    request             jsonb NOT NULL,
    media_id            text,
    -- Image and attached-media credentials cannot be refreshed; a retry creates a new asset
    -- and the old id is kept here (invariant 2).
    superseded_media_ids text[] NOT NULL DEFAULT '{}',
    upload_endpoint     text,
    upload_bucket       text,
    upload_key          text,
    bytes_total         bigint,
    bytes_uploaded      bigint NOT NULL DEFAULT 0,
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL DEFAULT 5,
    -- When a queued or retrying job may next be claimed.
    run_at              timestamptz NOT NULL DEFAULT now(),
    -- Lease (invariant 4): owner, expiry and a fencing token that grows with each claim.
    lease_owner         text,
    lease_expires_at    timestamptz,
    lease_token         bigint NOT NULL DEFAULT 0,
    last_error_code     text,
    last_error_message  text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    uploaded_at         timestamptz,
    completed_at        timestamptz
);

CREATE INDEX ingest_jobs_claimable ON ingest_jobs (run_at) WHERE state IN ('queued', 'retrying');
CREATE INDEX ingest_jobs_leased ON ingest_jobs (lease_expires_at) WHERE state = 'uploading';
CREATE INDEX ingest_jobs_state ON ingest_jobs (state, updated_at);
CREATE UNIQUE INDEX ingest_jobs_media_id ON ingest_jobs (media_id) WHERE media_id IS NOT NULL;

-- History: one row per transition.
CREATE TABLE ingest_job_events (
    id              bigserial PRIMARY KEY,
    job_id          text NOT NULL REFERENCES ingest_jobs (job_id) ON DELETE CASCADE,
    from_state      text,
    to_state        text NOT NULL,
    media_id        text,
    error_code      text,
    error_message   text,
    detail          jsonb,
    at              timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ingest_job_events_job ON ingest_job_events (job_id, id);

-- Every callback received, raw, with its verification outcome (invariant 6).
CREATE TABLE vod_events (
    id                  bigserial PRIMARY KEY,
    received_at         timestamptz NOT NULL DEFAULT now(),
    verification        text NOT NULL,
    event_type          text,
    media_id            text,
    job_id              text,
    signature_timestamp bigint,
    -- Identifies a redelivery of the same event: VOD has no event id.
    dedup_key           text,
    applied             boolean NOT NULL DEFAULT false,
    headers             jsonb NOT NULL,
    body                bytea NOT NULL
);

CREATE UNIQUE INDEX vod_events_dedup ON vod_events (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX vod_events_media ON vod_events (media_id);
