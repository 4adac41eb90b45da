//! The store's side of the reconciler ([`crate::reconciler`]): which jobs to ask VOD about,
//! and how many checks in a row found their media missing.

use std::time::Duration;

use super::store::{Job, JobStore};

impl JobStore {
    /// Jobs in `uploaded` for longer than `grace`, not checked within `recheck`: their callback
    /// is late. Oldest first, at most `limit`.
    pub async fn uploaded_awaiting_check(
        &self,
        grace: Duration,
        recheck: Duration,
        limit: i64,
    ) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM ingest_jobs
             WHERE state = 'uploaded' AND media_id IS NOT NULL
               AND uploaded_at < now() - make_interval(secs => $1)
               AND (media_checked_at IS NULL OR media_checked_at < now() - make_interval(secs => $3))
             ORDER BY uploaded_at LIMIT $2",
        )
        .bind(grace.as_secs_f64())
        .bind(limit)
        .bind(recheck.as_secs_f64())
        .fetch_all(self.pool())
        .await
    }

    /// Videos completed more than `grace` ago without a processing outcome, not checked within
    /// `recheck`: their processing events are late. Oldest first, at most `limit`.
    pub async fn completed_awaiting_outcome(
        &self,
        grace: Duration,
        recheck: Duration,
        limit: i64,
    ) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM ingest_jobs
             WHERE state = 'completed' AND kind = 'video' AND media_id IS NOT NULL
               AND (media_status IS NULL OR media_status IN ('UploadSucc', 'Transcoding'))
               AND completed_at < now() - make_interval(secs => $1)
               AND (media_checked_at IS NULL OR media_checked_at < now() - make_interval(secs => $3))
             ORDER BY completed_at LIMIT $2",
        )
        .bind(grace.as_secs_f64())
        .bind(limit)
        .bind(recheck.as_secs_f64())
        .fetch_all(self.pool())
        .await
    }

    /// Counts a check that found the job's media missing or failed; returns the checks in a
    /// row.
    pub async fn count_missing_check(&self, job_id: &str) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE ingest_jobs SET media_checks = media_checks + 1, media_checked_at = now()
             WHERE job_id = $1 RETURNING media_checks",
        )
        .bind(job_id)
        .fetch_one(self.pool())
        .await
    }

    /// Records that VOD was asked about the job's media just now.
    pub async fn mark_media_checked(&self, job_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE ingest_jobs SET media_checked_at = now() WHERE job_id = $1")
            .bind(job_id)
            .execute(self.pool())
            .await
            .map(drop)
    }
}
