-- The worker's two per-job writes for many jobs at once (JobStore::set_media_many and
-- JobStore::mark_uploaded_many): concurrent jobs of one process share a round trip and a
-- commit instead of taking one each.
--
-- Jobs are taken in job_id order, as the webhook's batches lock them, so a worker batch and a
-- callback batch waiting for each other's rows cannot deadlock.

-- set_media for each (job, token, media id, address, size); answers the jobs written (the
-- others lost their lease). The same statement JobStore::set_media ran for one job.
CREATE FUNCTION ingest_set_media_many(
    p_job_ids text[], p_tokens bigint[], p_media_ids text[], p_endpoints text[],
    p_buckets text[], p_keys text[], p_bytes_totals bigint[])
RETURNS TABLE (written_job_id text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT * FROM unnest(p_job_ids, p_tokens, p_media_ids, p_endpoints, p_buckets, p_keys,
                             p_bytes_totals) AS i(job_id, token, media_id, endpoint, bucket, key, bytes_total)
        ORDER BY i.job_id
    LOOP
        RETURN QUERY
        WITH j AS (
            UPDATE ingest_jobs SET
                superseded_media_ids = CASE WHEN ingest_jobs.media_id IS NOT NULL AND ingest_jobs.media_id <> r.media_id
                    THEN array_append(superseded_media_ids, ingest_jobs.media_id) ELSE superseded_media_ids END,
                media_id = r.media_id, upload_endpoint = r.endpoint, upload_bucket = r.bucket,
                upload_key = r.key, bytes_total = COALESCE(r.bytes_total, ingest_jobs.bytes_total),
                bytes_uploaded = 0, updated_at = now()
            WHERE ingest_jobs.job_id = r.job_id AND lease_token = r.token AND state = 'uploading'
            RETURNING ingest_jobs.job_id, ingest_jobs.superseded_media_ids)
        -- Not a state change, but part of the history an operator reads.
        INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id, detail)
        SELECT j.job_id, 'uploading', 'uploading', r.media_id, jsonb_build_object(
            'media_id_assigned', r.media_id, 'superseded', j.superseded_media_ids,
            'bucket', r.bucket, 'key', r.key)
        FROM j
        RETURNING ingest_job_events.job_id;
    END LOOP;
END
$$;

-- ingest_mark_uploaded for each (job, token); answers its transitions with the job's id, in
-- order per job. Each job's statements keep their own snapshots (see ingest_mark_uploaded).
CREATE FUNCTION ingest_mark_uploaded_many(p_job_ids text[], p_tokens bigint[], p_completion_events jsonb)
RETURNS TABLE (moved_job_id text, to_state text, kind text, media_id text, at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT * FROM unnest(p_job_ids, p_tokens) AS i(job_id, token) ORDER BY i.job_id
    LOOP
        RETURN QUERY
        SELECT r.job_id, m.to_state, m.kind, m.media_id, m.at
        FROM ingest_mark_uploaded(r.job_id, r.token, p_completion_events) AS m;
    END LOOP;
END
$$;
