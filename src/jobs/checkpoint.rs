//! Multipart checkpoints: the upload id and every finished part, written as parts finish, so a
//! job resumed after a crash uploads only what is missing (invariant 3, `docs/design.md`). Writes are fenced by
//! the lease token like every other worker write.

use sqlx::PgPool;

use super::store::{fenced, StoreError};

/// One finished part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub crc64: u64,
}

/// The state of one multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub media_id: String,
    pub upload_id: String,
    pub bucket: String,
    pub object_key: String,
    pub part_size: u64,
    pub part_count: u32,
    pub file_size: u64,
    pub source_version: Option<i64>,
    pub parts: Vec<PartRecord>,
}

#[derive(sqlx::FromRow)]
struct UploadRow {
    media_id: String,
    upload_id: String,
    bucket: String,
    object_key: String,
    part_size: i64,
    part_count: i32,
    file_size: i64,
    source_mtime_ns: Option<i64>,
}

const FENCE: &str = "EXISTS (SELECT 1 FROM ingest_jobs WHERE job_id = $1 AND lease_token = $2 AND state = 'uploading')";

/// Checkpoint storage.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    pool: PgPool,
}

impl Checkpoints {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn load(&self, job_id: &str) -> Result<Option<Checkpoint>, sqlx::Error> {
        let row: Option<UploadRow> =
            sqlx::query_as("SELECT * FROM multipart_uploads WHERE job_id = $1")
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let parts: Vec<(i32, String, i64, i64)> = sqlx::query_as(
            "SELECT part_number, etag, size, crc64 FROM multipart_parts WHERE job_id = $1 ORDER BY part_number",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(Checkpoint {
            media_id: row.media_id,
            upload_id: row.upload_id,
            bucket: row.bucket,
            object_key: row.object_key,
            part_size: row.part_size as u64,
            part_count: row.part_count as u32,
            file_size: row.file_size as u64,
            source_version: row.source_mtime_ns,
            parts: parts
                .into_iter()
                .map(|(n, etag, size, crc)| PartRecord {
                    part_number: n as u32,
                    etag,
                    size: size as u64,
                    crc64: crc as u64,
                })
                .collect(),
        }))
    }

    /// Records a new upload (replacing any previous checkpoint of the job).
    pub async fn start(
        &self,
        job_id: &str,
        token: i64,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM multipart_uploads WHERE job_id = $1")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO multipart_uploads (job_id, media_id, upload_id, bucket, object_key, part_size, part_count, file_size, source_mtime_ns)
             SELECT $1, $3, $4, $5, $6, $7, $8, $9, $10 WHERE {FENCE}"
        ))
        .bind(job_id)
        .bind(token)
        .bind(&checkpoint.media_id)
        .bind(&checkpoint.upload_id)
        .bind(&checkpoint.bucket)
        .bind(&checkpoint.object_key)
        .bind(checkpoint.part_size as i64)
        .bind(checkpoint.part_count as i32)
        .bind(checkpoint.file_size as i64)
        .bind(checkpoint.source_version)
        .execute(&mut *tx)
        .await?;
        fenced(inserted.rows_affected(), job_id)?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a finished part; called as each part finishes.
    pub async fn record_part(
        &self,
        job_id: &str,
        token: i64,
        part: &PartRecord,
    ) -> Result<(), StoreError> {
        let inserted = sqlx::query(&format!(
            "INSERT INTO multipart_parts (job_id, part_number, etag, size, crc64)
             SELECT $1, $3, $4, $5, $6 WHERE {FENCE}
             ON CONFLICT (job_id, part_number) DO UPDATE
               SET etag = EXCLUDED.etag, size = EXCLUDED.size, crc64 = EXCLUDED.crc64, uploaded_at = now()"
        ))
        .bind(job_id)
        .bind(token)
        .bind(part.part_number as i32)
        .bind(&part.etag)
        .bind(part.size as i64)
        .bind(part.crc64 as i64)
        .execute(&self.pool)
        .await?;
        fenced(inserted.rows_affected(), job_id)
    }

    /// Forgets parts that OSS no longer has.
    pub async fn forget_parts(
        &self,
        job_id: &str,
        part_numbers: &[u32],
    ) -> Result<(), sqlx::Error> {
        let numbers: Vec<i32> = part_numbers.iter().map(|n| *n as i32).collect();
        sqlx::query("DELETE FROM multipart_parts WHERE job_id = $1 AND part_number = ANY($2)")
            .bind(job_id)
            .bind(&numbers)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops the checkpoint once the upload completed or was aborted.
    pub async fn delete(&self, job_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM multipart_uploads WHERE job_id = $1")
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
