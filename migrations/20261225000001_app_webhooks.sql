-- Webhooks to apps (issue 20): a key may name a URL that gets its uploads' events, signed as
-- Standard Webhooks sign them.
--
-- The signing secret is not stored: it is derived from the server's signing key
-- (VOD_INGEST_WEBHOOK_SIGNING_KEY), the key id and a generation that rotation increments, so the
-- database holds nothing that signs.
ALTER TABLE api_keys ADD COLUMN webhook_url text;
ALTER TABLE api_keys ADD COLUMN webhook_secret_generation integer NOT NULL DEFAULT 0;
-- Until a day after a rotation, deliveries carry a signature with the previous secret too.
ALTER TABLE api_keys ADD COLUMN webhook_secret_rotated_at timestamptz;

-- The outbox of webhook deliveries: one row per event and key, written in the transaction that
-- wrote the event (by the trigger below), so a crash loses none.
CREATE TABLE app_webhook_deliveries (
    id              bigserial PRIMARY KEY,
    key_id          text NOT NULL REFERENCES api_keys (key_id) ON DELETE CASCADE,
    job_id          text NOT NULL,
    event_id        bigint NOT NULL REFERENCES ingest_job_events (id) ON DELETE CASCADE,
    -- upload.completed, upload.failed, upload.cancelled, media.<milestone>
    event_type      text NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A dispatcher holds the delivery until then; a crashed one's deliveries are taken again.
    leased_until    timestamptz,
    -- Fixed at the first attempt, so that every retry sends the same bytes.
    body            text,
    last_status     integer,
    last_error      text,
    last_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
-- What is due, and what goes first for each upload (deliveries are in order per upload).
CREATE INDEX app_webhook_deliveries_due ON app_webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX app_webhook_deliveries_job ON app_webhook_deliveries (job_id, id) WHERE state = 'pending';
-- The console's recent deliveries of a key.
CREATE INDEX app_webhook_deliveries_key ON app_webhook_deliveries (key_id, id DESC);
-- The retention sweep.
CREATE INDEX app_webhook_deliveries_finished ON app_webhook_deliveries (finished_at) WHERE state <> 'pending';

-- Every path that records an event (worker, webhook, reconciler, API, console) inserts into
-- ingest_job_events; a statement trigger there enqueues the deliveries in the same transaction,
-- with one set-based insert per statement. Only client uploads of keys with a webhook URL, and
-- only the events apps are told about, get a row.
CREATE FUNCTION app_webhooks_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO app_webhook_deliveries (key_id, job_id, event_id, event_type)
    SELECT k.key_id, e.job_id, e.id,
           CASE WHEN e.milestone IS NOT NULL THEN 'media.' || e.milestone ELSE 'upload.' || e.to_state END
    FROM (SELECT * FROM new_events n
          WHERE n.milestone IS NOT NULL
             OR (n.to_state IN ('completed', 'failed', 'cancelled')
                 AND n.from_state IS DISTINCT FROM n.to_state)) e
    JOIN ingest_jobs j ON j.job_id = e.job_id AND j.api_key_id IS NOT NULL
    JOIN api_keys k ON k.key_id = j.api_key_id
    WHERE k.webhook_url IS NOT NULL AND k.revoked_at IS NULL
    ORDER BY e.id;
    IF FOUND THEN
        -- Wakes the dispatchers of every process (delivered at commit; repeats collapse).
        PERFORM pg_notify('app_webhooks', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER app_webhooks_enqueue AFTER INSERT ON ingest_job_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION app_webhooks_enqueue();
