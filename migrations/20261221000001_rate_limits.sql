-- The fleet-wide limit on VOD API calls (src/ratelimit): per action, per second of
-- PostgreSQL's clock, how many calls the processes of this deployment have claimed. A process
-- claims a few calls at a time with one statement, so a process that dies loses at most what
-- it claimed for the current second.
CREATE TABLE vod_rate_windows (
    action text NOT NULL,
    second bigint NOT NULL,
    used integer NOT NULL,
    -- What the last claim was granted (read back by the claiming statement).
    last_grant integer NOT NULL,
    PRIMARY KEY (action, second)
);

-- After VOD answered Throttling*, the whole fleet uses `factor` of the configured limit for
-- that action until `until`.
CREATE TABLE vod_rate_backoff (
    action text PRIMARY KEY,
    factor double precision NOT NULL CHECK (factor > 0 AND factor <= 1),
    until timestamptz NOT NULL
);
