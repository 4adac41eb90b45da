-- Transitions are published to RabbitMQ from this table (a transactional outbox), so an event
-- is not lost when a process dies between its commit and its publish.
ALTER TABLE ingest_job_events ADD COLUMN published_at timestamptz;
-- Rows written before this migration were published (or lost) already.
UPDATE ingest_job_events SET published_at = at;
CREATE INDEX ingest_job_events_unpublished ON ingest_job_events (id) WHERE published_at IS NULL;
