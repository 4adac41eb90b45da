-- Multipart checkpoints (invariant 3): what a resumed job needs to upload only what is missing.
CREATE TABLE multipart_uploads (
    job_id          text PRIMARY KEY REFERENCES ingest_jobs (job_id) ON DELETE CASCADE,
    media_id        text NOT NULL,
    upload_id       text NOT NULL,
    bucket          text NOT NULL,
    object_key      text NOT NULL,
    part_size       bigint NOT NULL,
    part_count      integer NOT NULL,
    file_size       bigint NOT NULL,
    -- The source as it was when the upload started; a changed source starts over.
    source_mtime_ns bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE multipart_parts (
    job_id          text NOT NULL REFERENCES multipart_uploads (job_id) ON DELETE CASCADE,
    part_number     integer NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    etag            text NOT NULL,
    size            bigint NOT NULL,
    -- CRC-64/XZ of the part, stored as the two's-complement bit pattern of the u64.
    crc64           bigint NOT NULL,
    uploaded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, part_number)
);
