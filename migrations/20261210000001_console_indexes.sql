-- IF NOT EXISTS: on a large table, create these first by hand with CREATE INDEX CONCURRENTLY
-- (same names), since migrations run in a transaction and a plain CREATE INDEX blocks writes.
--
-- The operator console (src/console/) pages through jobs newest first with keyset pagination:
-- ORDER BY created_at DESC, job_id DESC and WHERE (created_at, job_id) < (cursor), so every
-- page is an index range scan, however deep. One index per filter it offers, so a filter that
-- matches few rows (origin = 'sts', kind = 'image', state = 'failed') does not walk the whole
-- table looking for them. Scanned backwards, ascending indexes serve the descending order.
CREATE INDEX IF NOT EXISTS ingest_jobs_created ON ingest_jobs (created_at, job_id);
CREATE INDEX IF NOT EXISTS ingest_jobs_state_created ON ingest_jobs (state, created_at, job_id);
CREATE INDEX IF NOT EXISTS ingest_jobs_kind_created ON ingest_jobs (kind, created_at, job_id);
CREATE INDEX IF NOT EXISTS ingest_jobs_origin_created ON ingest_jobs (origin, created_at, job_id);

-- Search by a piece of a job id or title (ILIKE '%...%'): trigram indexes. pg_trgm ships with
-- PostgreSQL and is a trusted extension (PostgreSQL 13+): a user with CREATE on the database may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS ingest_jobs_job_id_trgm ON ingest_jobs USING gin (job_id gin_trgm_ops);
CREATE INDEX IF NOT EXISTS ingest_jobs_title_trgm ON ingest_jobs USING gin (title gin_trgm_ops);

-- Throughput over the last hour: the transitions that end an upload or a job, by time.
CREATE INDEX IF NOT EXISTS ingest_job_events_finished ON ingest_job_events (at)
    WHERE to_state IN ('uploaded', 'completed', 'failed', 'cancelled');
