-- Per-key settings an operator chooses (issue 19): the VOD parameters that act with the
-- service's authority (a client may no longer send them), and whether the key's STS tokens
-- may call RefreshUploadVideo (which can overwrite any video's source file).
ALTER TABLE api_keys ADD COLUMN allow_sts_refresh boolean NOT NULL DEFAULT false;
ALTER TABLE api_keys ADD COLUMN app_id text;
ALTER TABLE api_keys ADD COLUMN workflow_id text;
ALTER TABLE api_keys ADD COLUMN template_group_id text;
ALTER TABLE api_keys ADD COLUMN storage_location text;
ALTER TABLE api_keys ADD COLUMN callback_url text;

-- Refusals by a key's request budget are written once per key and minute with their count,
-- not once per request.
ALTER TABLE api_audit ADD COLUMN repeats integer NOT NULL DEFAULT 1 CHECK (repeats > 0);
