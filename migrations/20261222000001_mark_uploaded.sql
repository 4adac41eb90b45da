-- `uploaded`, and `completed` at once when VOD's confirmation is already stored
-- (JobStore::mark_uploaded), in one round trip instead of two.
--
-- Two statements, not one: in READ COMMITTED each statement of a VOLATILE function takes a
-- new snapshot, so the second sees a confirmation that the webhook committed while the first
-- waited for the job's row lock (the webhook holds it while it stores a confirmation for a job
-- still `uploading`). One statement would miss it, and the job would wait for the reconciler.
--
-- p_completion_events maps each kind to its confirmation event (JobKind::completion_event).
-- Answers one row per transition, in order; none when the lease is lost.
CREATE FUNCTION ingest_mark_uploaded(p_job_id text, p_token bigint, p_completion_events jsonb)
RETURNS TABLE (to_state text, kind text, media_id text, at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_kind text;
    v_media_id text;
    v_at timestamptz;
BEGIN
    WITH j AS (
        UPDATE ingest_jobs SET state = 'uploaded', lease_owner = NULL, lease_expires_at = NULL,
            updated_at = now(), uploaded_at = now(),
            bytes_uploaded = COALESCE(bytes_total, bytes_uploaded)
        WHERE ingest_jobs.job_id = p_job_id AND lease_token = p_token AND state = 'uploading'
        RETURNING ingest_jobs.job_id, ingest_jobs.kind, ingest_jobs.media_id, ingest_jobs.state),
     e AS (
        INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id)
        SELECT j.job_id, 'uploading', j.state, j.media_id FROM j
        RETURNING ingest_job_events.at)
    SELECT j.kind, j.media_id, e.at INTO v_kind, v_media_id, v_at FROM j, e;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT 'uploaded'::text, v_kind, v_media_id, v_at;
    IF v_media_id IS NULL THEN
        RETURN;
    END IF;
    -- What `complete_by_media_in` does for an `uploaded` job and a confirmation without a size.
    RETURN QUERY
    WITH ev AS (
        SELECT vod_events.id FROM vod_events
        WHERE vod_events.media_id = v_media_id
          AND event_type = p_completion_events ->> v_kind AND NOT applied
          AND verification IN ('verified', 'not_configured')
        ORDER BY vod_events.id LIMIT 1 FOR UPDATE),
     j AS (
        UPDATE ingest_jobs SET state = 'completed', updated_at = now(),
            lease_owner = NULL, lease_expires_at = NULL, completed_at = now(),
            bytes_uploaded = COALESCE(bytes_total, bytes_uploaded)
        WHERE ingest_jobs.job_id = p_job_id AND state = 'uploaded' AND EXISTS (SELECT 1 FROM ev)
        RETURNING ingest_jobs.job_id, ingest_jobs.state, ingest_jobs.media_id),
     e AS (
        INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id, detail)
        SELECT j.job_id, 'uploaded', j.state, j.media_id,
            jsonb_build_object('via', p_completion_events ->> v_kind, 'size', NULL)
        FROM j
        RETURNING ingest_job_events.at),
     applied AS (
        UPDATE vod_events SET applied = true, job_id = p_job_id
        WHERE vod_events.id = (SELECT ev.id FROM ev) AND EXISTS (SELECT 1 FROM j))
    SELECT 'completed'::text, v_kind, v_media_id, e.at FROM j, e;
END
$$;
