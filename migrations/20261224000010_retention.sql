-- The retention sweep deletes old callbacks and audit rows in batches, oldest first.
CREATE INDEX vod_events_received ON vod_events (received_at);
CREATE INDEX api_audit_at ON api_audit (at);
