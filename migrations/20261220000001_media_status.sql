-- VOD's side of a job after the upload (issue 10): what VOD's processing events (analysis,
-- snapshots, transcoding, audit) and the reconciler say about its media.
--
-- media_status: VOD's status vocabulary (UploadSucc, Transcoding, Normal, TranscodeFail,
-- Blocked) plus Missing (VOD no longer knows a media whose upload it once confirmed).
-- media_detail: one entry per processing step, {"analysis", "snapshot", "streams": {"LD-mp4": ...},
-- "transcode", "audit", "ai_audit", "deleted"}, each with VOD's status, EventTime, the event
-- that set it and what VOD reported (definitions, sizes, error codes and messages).
ALTER TABLE ingest_jobs ADD COLUMN media_status text;
ALTER TABLE ingest_jobs ADD COLUMN media_detail jsonb NOT NULL DEFAULT '{}';
ALTER TABLE ingest_jobs ADD COLUMN media_updated_at timestamptz;
-- The reconciler's checks of this job's media that found it missing or failed in a row, and
-- when it last asked VOD (so each job is asked at most once per interval).
ALTER TABLE ingest_jobs ADD COLUMN media_checks integer NOT NULL DEFAULT 0;
ALTER TABLE ingest_jobs ADD COLUMN media_checked_at timestamptz;

-- A media milestone (media.playable, media.transcode_failed, ...) is a history row that
-- changes no job state; the outbox publishes it as `media.<milestone>`, in order with the
-- job's transitions.
ALTER TABLE ingest_job_events ADD COLUMN milestone text;

-- Completed videos whose processing outcome is not known yet: what the reconciler asks about.
CREATE INDEX ingest_jobs_processing ON ingest_jobs (completed_at)
    WHERE state = 'completed' AND kind = 'video'
      AND (media_status IS NULL OR media_status IN ('UploadSucc', 'Transcoding'));

-- VOD's EventTime of each stored callback (any of its three formats, as UTC).
ALTER TABLE vod_events ADD COLUMN event_time timestamptz;
