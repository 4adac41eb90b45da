-- VOD's callback signature does not cover the body, so an upload event for a client upload or
-- an STS upload (no worker checked those bytes) waits here until VOD confirms the media has
-- the file; only then does the job complete (or the STS upload get recorded).
ALTER TABLE vod_events ADD COLUMN confirm_requested_at timestamptz;
ALTER TABLE vod_events ADD COLUMN confirm_checked_at timestamptz;
-- What VOD said: `confirmed`, `not_found`, or the media's status while it is not uploaded
-- (`Uploading`, `UploadFail`, ...): an event VOD did not confirm changed nothing.
ALTER TABLE vod_events ADD COLUMN confirm_outcome text;
CREATE INDEX vod_events_to_confirm ON vod_events (id) WHERE confirm_requested_at IS NOT NULL;
