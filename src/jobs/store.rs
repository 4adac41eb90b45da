//! The PostgreSQL side of jobs: every state change is one transaction that updates the row,
//! appends to `ingest_job_events`, and returns a [`Transition`] for the events exchange.
//!
//! Writes by a worker are fenced by the lease token it got when it claimed the job: a worker
//! that lost its lease (or whose job was cancelled) updates nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction as PgTx};

use super::message::JobSpec;
use super::model::{JobKind, JobState, Origin};

/// A job row as operators and workers see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Job {
    pub job_id: String,
    pub kind: JobKind,
    pub state: JobState,
    pub origin: Origin,
    pub source: String,
    pub title: Option<String>,
    pub file_name: Option<String>,
    pub request: serde_json::Value,
    pub media_id: Option<String>,
    pub superseded_media_ids: Vec<String>,
    pub upload_endpoint: Option<String>,
    pub upload_bucket: Option<String>,
    pub upload_key: Option<String>,
    pub bytes_total: Option<i64>,
    pub bytes_uploaded: i64,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    #[serde(skip)]
    pub lease_owner: Option<String>,
    #[serde(skip)]
    pub lease_expires_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub lease_token: i64,
    pub last_error_code: Option<String>,
    pub last_error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub uploaded_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Client uploads: the API key that asked, and its size limit at the time.
    pub api_key_id: Option<String>,
    pub max_file_size: Option<i64>,
    /// Client uploads: when the last credential handed out expires.
    pub credential_expires_at: Option<DateTime<Utc>>,
    /// VOD's side after the upload (`UploadSucc`, `Transcoding`, `Normal`, `TranscodeFail`,
    /// `Blocked`, `Missing`), from its processing events and the reconciler ([`super::media`]).
    pub media_status: Option<String>,
    /// Per processing step: what VOD reported ([`super::MediaDetail`] as JSON).
    pub media_detail: serde_json::Value,
    pub media_updated_at: Option<DateTime<Utc>>,
    /// Reconciler checks in a row that found the media missing or failed.
    pub media_checks: i32,
    #[serde(skip)]
    pub media_checked_at: Option<DateTime<Utc>>,
}

impl Job {
    pub fn kind(&self) -> JobKind {
        self.kind
    }

    pub fn state(&self) -> JobState {
        self.state
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }
}

/// A client upload as recorded when its first credential is handed out.
#[derive(Debug, Clone)]
pub struct NewClientUpload {
    pub job_id: String,
    pub kind: JobKind,
    pub title: String,
    pub file_name: String,
    /// The validated metadata (never secrets).
    pub request: serde_json::Value,
    pub media_id: String,
    pub upload_endpoint: String,
    pub upload_bucket: String,
    pub upload_key: String,
    /// The size the client declared.
    pub declared_size: u64,
    pub api_key_id: String,
    pub max_file_size: u64,
    pub credential_expires_at: DateTime<Utc>,
}

/// A fresh credential for a client upload: the same media (a video) or a new asset.
#[derive(Debug, Clone)]
pub struct ClientRefresh {
    pub media_id: String,
    pub upload_endpoint: String,
    pub upload_bucket: String,
    pub upload_key: String,
    pub credential_expires_at: DateTime<Utc>,
}

/// The upload VOD reported complete, as the webhook or reconciler saw it.
#[derive(Debug, Clone, Copy)]
pub struct Confirmation<'a> {
    /// `FileUploadComplete`, `reconciler`, ...
    pub via: &'a str,
    /// The size VOD reports for the stored file, when it reports one.
    pub size: Option<u64>,
}

/// One row of a job's history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct JobEvent {
    pub id: i64,
    pub job_id: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub media_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub detail: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
    /// Set on a media milestone (`playable`, `transcode_failed`, ...): a row that changes no
    /// state and is published as `media.<milestone>`.
    pub milestone: Option<String>,
}

/// A committed state change, as published on the events exchange (`job.<state>`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub job_id: String,
    pub kind: JobKind,
    pub state: JobState,
    pub previous_state: Option<JobState>,
    pub media_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub at: DateTime<Utc>,
}

/// Why an operator's (or an app's) cancel or retry moved nothing. Retrying the same request
/// does not help; the message says what would.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MoveRefused {
    #[error("no job with id {job_id:?}")]
    NoSuchJob { job_id: String },
    #[error(
        "job {job_id} was uploaded by a client app ({origin}), so the service cannot upload it \
         again: the app must ask for a new upload"
    )]
    UploadedByClient { job_id: String, origin: Origin },
    #[error(
        "job {job_id} is {current}; only a job that is {} can become {to}",
        or_list(from)
    )]
    WrongState {
        job_id: String,
        current: JobState,
        from: &'static [JobState],
        to: JobState,
    },
}

fn or_list(states: &[JobState]) -> String {
    states
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A media milestone after the upload, as published on the events exchange
/// (`media.<milestone>`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaMilestone {
    pub job_id: String,
    pub kind: JobKind,
    /// `playable`, `transcode_failed`, `analysed`, `stream_ready`, ... (`docs/media-events.md`).
    pub milestone: String,
    pub media_id: Option<String>,
    /// The media status after this milestone (`Normal`, `TranscodeFail`, ...).
    pub media_status: Option<String>,
    /// The job's state when it happened.
    pub state: JobState,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// What VOD reported for the step (definition, format, URL, EventTime, ...).
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// What the outbox publishes: a job transition or a media milestone.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxMessage {
    Job(Transition),
    Media(MediaMilestone),
}

impl OutboxMessage {
    /// `job.<state>` or `media.<milestone>`.
    pub fn routing_key(&self) -> String {
        match self {
            OutboxMessage::Job(t) => format!("job.{}", t.state),
            OutboxMessage::Media(m) => format!("media.{}", m.milestone),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        match self {
            OutboxMessage::Job(t) => serde_json::to_vec(t),
            OutboxMessage::Media(m) => serde_json::to_vec(m),
        }
        .expect("plain data serializes")
    }
}

/// A job claimed by a worker, with the fencing token its writes must carry.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: Job,
    pub token: i64,
    pub rescued: bool,
}

/// Result of recording a job from the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    Created(Transition),
    /// A job with this `job_id` exists: the message is a duplicate and creates nothing.
    Duplicate,
}

/// Why an outbox pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError<E> {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("publishing failed: {0}")]
    Publish(E),
}

/// Why a fenced write did nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the lease on job {0} was lost (it expired and another worker took it, or an operator cancelled the job)")]
    LeaseLost(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The statement that wrote a batch of jobs together failed: each job gets its error.
    #[error(transparent)]
    Shared(std::sync::Arc<sqlx::Error>),
}

/// The outcome of a write fenced by a lease token: exactly one row, or the lease is gone.
pub(super) fn fenced(rows_affected: u64, job_id: &str) -> Result<(), StoreError> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost(job_id.to_owned()))
    }
}

#[derive(Debug, Clone, Default)]
struct EventFields<'a> {
    media_id: Option<&'a str>,
    error_code: Option<&'a str>,
    error_message: Option<&'a str>,
    detail: Option<serde_json::Value>,
}

async fn record(
    tx: &mut PgTx<'_, Postgres>,
    job: &Job,
    from: Option<JobState>,
    fields: EventFields<'_>,
) -> Result<Transition, sqlx::Error> {
    let at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id, error_code, error_message, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING at",
    )
    .bind(&job.job_id)
    .bind(from.map(|s| s.as_str()))
    .bind(job.state)
    .bind(fields.media_id.or(job.media_id.as_deref()))
    .bind(fields.error_code)
    .bind(fields.error_message)
    .bind(fields.detail)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Transition {
        job_id: job.job_id.clone(),
        kind: job.kind,
        state: job.state(),
        previous_state: from,
        media_id: job.media_id.clone(),
        error_code: fields.error_code.map(str::to_owned),
        error_message: fields.error_message.map(str::to_owned),
        at,
    })
}

/// A job row with the time of the history row the same statement wrote.
#[derive(sqlx::FromRow)]
struct JobWithEvent {
    #[sqlx(flatten)]
    job: Job,
    event_at: DateTime<Utc>,
}

impl JobWithEvent {
    fn transition(
        self,
        from: Option<JobState>,
        error_code: Option<&str>,
        error_message: Option<&str>,
    ) -> Transition {
        Transition {
            state: self.job.state(),
            job_id: self.job.job_id,
            kind: self.job.kind,
            previous_state: from,
            media_id: self.job.media_id,
            error_code: error_code.map(str::to_owned),
            error_message: error_message.map(str::to_owned),
            at: self.event_at,
        }
    }
}

/// The Postgres job store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobStore {
    pool: PgPool,
}

impl JobStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Records a validated job as `queued`; idempotent on `job_id`.
    pub async fn insert(&self, spec: &JobSpec, origin: Origin) -> Result<Inserted, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let request = serde_json::to_value(&spec.message).expect("a message serializes");
        let job: Option<Job> = sqlx::query_as(
            "INSERT INTO ingest_jobs (job_id, kind, state, origin, source, title, file_name, request)
             VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7)
             ON CONFLICT (job_id) DO NOTHING
             RETURNING *",
        )
        .bind(&spec.job_id)
        .bind(spec.kind.as_str())
        .bind(origin.as_str())
        .bind(spec.source.display())
        .bind(&spec.title)
        .bind(&spec.file_name)
        .bind(request)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(job) = job else {
            return Ok(Inserted::Duplicate);
        };
        let transition = record(&mut tx, &job, None, EventFields::default()).await?;
        tx.commit().await?;
        Ok(Inserted::Created(transition))
    }

    /// Claims the next runnable job (queued or retrying and due, or uploading with an expired
    /// lease) for `owner`, in one statement, so two workers never get the same job.
    pub async fn claim(
        &self,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<(Lease, Transition)>, sqlx::Error> {
        self.claim_where(None, owner, lease).await
    }

    /// Claims one particular job, if it is runnable (`vod-ingest upload`).
    pub async fn claim_job(
        &self,
        job_id: &str,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<(Lease, Transition)>, sqlx::Error> {
        self.claim_where(Some(job_id), owner, lease).await
    }

    async fn claim_where(
        &self,
        only: Option<&str>,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<(Lease, Transition)>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, JobState)> = sqlx::query_as(
            "SELECT job_id, state FROM ingest_jobs
             WHERE ((state IN ('queued', 'retrying') AND run_at <= now())
                OR (state = 'uploading' AND lease_expires_at < now()))
               AND ($1::text IS NULL OR job_id = $1)
             ORDER BY run_at
             LIMIT 1
             FOR UPDATE SKIP LOCKED",
        )
        .bind(only)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((job_id, previous)) = row else {
            return Ok(None);
        };
        let job: Job = sqlx::query_as(
            "UPDATE ingest_jobs
             SET state = 'uploading', attempts = attempts + 1, lease_owner = $2,
                 lease_expires_at = now() + make_interval(secs => $3),
                 lease_token = lease_token + 1, updated_at = now()
             WHERE job_id = $1
             RETURNING *",
        )
        .bind(&job_id)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        let rescued = previous == JobState::Uploading;
        let detail = serde_json::json!({
            "worker": owner,
            "attempt": job.attempts,
            "rescued": rescued,
        });
        let transition = record(
            &mut tx,
            &job,
            Some(previous),
            EventFields {
                detail: Some(detail),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        let token = job.lease_token;
        Ok(Some((
            Lease {
                job,
                token,
                rescued,
            },
            transition,
        )))
    }

    /// Extends a lease; fails with `LeaseLost` when the job is no longer ours.
    pub async fn renew(
        &self,
        job_id: &str,
        token: i64,
        lease: std::time::Duration,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE ingest_jobs SET lease_expires_at = now() + make_interval(secs => $3)
             WHERE job_id = $1 AND lease_token = $2 AND state = 'uploading'",
        )
        .bind(job_id)
        .bind(token)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await?;
        fenced(updated.rows_affected(), job_id)
    }

    /// Stores the media id and upload address before the first byte goes out (invariant 2).
    /// A different previous id (image or attached media re-created) is kept as superseded.
    /// One job of [`JobStore::set_media_many`].
    pub async fn set_media(
        &self,
        job_id: &str,
        token: i64,
        media_id: &str,
        address: &crate::vod::UploadAddress,
        bytes_total: Option<u64>,
    ) -> Result<(), StoreError> {
        let assignment = super::MediaAssignment {
            job_id: job_id.to_owned(),
            token,
            media_id: media_id.to_owned(),
            address: address.clone(),
            bytes_total,
        };
        let mut written = self.set_media_many(&[assignment]).await?;
        written.pop().expect("one answer per assignment")
    }

    /// Adds a line to the job's history without changing its state (e.g. "the multipart
    /// upload was gone; started a new one").
    pub async fn note(
        &self,
        job_id: &str,
        token: i64,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id, detail)
             SELECT job_id, state, state, media_id, $3 FROM ingest_jobs
             WHERE job_id = $1 AND lease_token = $2 AND state = 'uploading'",
        )
        .bind(job_id)
        .bind(token)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        fenced(inserted.rows_affected(), job_id)
    }

    /// Progress, written at a bounded rate by the uploader.
    pub async fn set_progress(
        &self,
        job_id: &str,
        token: i64,
        bytes_uploaded: u64,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE ingest_jobs SET bytes_uploaded = $3, updated_at = now()
             WHERE job_id = $1 AND lease_token = $2 AND state = 'uploading'",
        )
        .bind(job_id)
        .bind(token)
        .bind(bytes_uploaded as i64)
        .execute(&self.pool)
        .await?;
        fenced(updated.rows_affected(), job_id)
    }

    /// Moves a leased job on; `LeaseLost` when the job is no longer this worker's.
    async fn finish_lease(
        &self,
        job_id: &str,
        token: i64,
        to: JobState,
        set: &str,
        binds: FinishBinds<'_>,
    ) -> Result<Transition, StoreError> {
        // One statement (one implicit transaction): the row and its history row together.
        let sql = format!(
            "WITH j AS (
                UPDATE ingest_jobs SET state = $3, lease_owner = NULL, lease_expires_at = NULL,
                    updated_at = now(), {set}
                WHERE job_id = $1 AND lease_token = $2 AND state = 'uploading'
                RETURNING *),
             e AS (
                INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id, error_code, error_message)
                SELECT job_id, 'uploading', state, media_id, $4, $5 FROM j
                RETURNING at)
             SELECT j.*, e.at AS event_at FROM j, e"
        );
        let row: Option<JobWithEvent> = sqlx::query_as(&sql)
            .bind(job_id)
            .bind(token)
            .bind(to.as_str())
            .bind(binds.error_code)
            .bind(binds.error_message)
            .bind(binds.run_at)
            .fetch_optional(&self.pool)
            .await?;
        let row = row.ok_or_else(|| StoreError::LeaseLost(job_id.to_owned()))?;
        Ok(row.transition(
            Some(JobState::Uploading),
            binds.error_code,
            binds.error_message,
        ))
    }

    /// All bytes are in OSS and verified; waiting for VOD to confirm. If VOD's confirmation
    /// already arrived (the callback often beats the worker), the job completes at once: both
    /// transitions are returned. One job of [`JobStore::mark_uploaded_many`].
    pub async fn mark_uploaded(
        &self,
        job_id: &str,
        token: i64,
    ) -> Result<Vec<Transition>, StoreError> {
        let mut moved = self
            .mark_uploaded_many(&[(job_id.to_owned(), token)])
            .await?;
        moved.pop().expect("one answer per lease")
    }

    /// Gives a leased job back on shutdown: `queued` and due now, so another worker claims it
    /// at once; the attempt does not count. Its multipart checkpoint stays for the next owner.
    pub async fn release(&self, job_id: &str, token: i64) -> Result<Transition, StoreError> {
        let mut tx = self.pool.begin().await?;
        let job: Option<Job> = sqlx::query_as(
            "UPDATE ingest_jobs SET state = 'queued', run_at = now(), updated_at = now(),
                lease_owner = NULL, lease_expires_at = NULL, attempts = GREATEST(attempts - 1, 0)
             WHERE job_id = $1 AND lease_token = $2 AND state = 'uploading'
             RETURNING *",
        )
        .bind(job_id)
        .bind(token)
        .fetch_optional(&mut *tx)
        .await?;
        let job = job.ok_or_else(|| StoreError::LeaseLost(job_id.to_owned()))?;
        let transition = record(
            &mut tx,
            &job,
            Some(JobState::Uploading),
            EventFields {
                detail: Some(serde_json::json!({ "released": "shutdown" })),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(transition)
    }

    /// A retryable failure: try again at `run_at`.
    pub async fn schedule_retry(
        &self,
        job_id: &str,
        token: i64,
        error_code: &str,
        error_message: &str,
        run_at: DateTime<Utc>,
    ) -> Result<Transition, StoreError> {
        self.finish_lease(
            job_id,
            token,
            JobState::Retrying,
            "last_error_code = $4, last_error_message = $5, run_at = $6",
            FinishBinds {
                error_code: Some(error_code),
                error_message: Some(error_message),
                run_at: Some(run_at),
            },
        )
        .await
    }

    /// A failure no retry will fix, or the attempts ran out.
    pub async fn fail(
        &self,
        job_id: &str,
        token: i64,
        error_code: &str,
        error_message: &str,
    ) -> Result<Transition, StoreError> {
        self.finish_lease(
            job_id,
            token,
            JobState::Failed,
            "last_error_code = $4, last_error_message = $5, run_at = COALESCE($6, run_at)",
            FinishBinds {
                error_code: Some(error_code),
                error_message: Some(error_message),
                run_at: None,
            },
        )
        .await
    }

    /// VOD confirmed the upload of `media_id` (callback or reconciler). A worker's job moves on
    /// only from `uploaded`: until then the worker has not verified the object's CRC-64, and a
    /// confirmation that arrives early is kept and applied by [`JobStore::mark_uploaded`]. A
    /// client upload moves on from `awaiting_upload`: its size is checked against the key's
    /// limit (`UploadTooLarge`), and without a reported size it waits in `uploaded` for the
    /// reconciler to read the size from VOD. Runs inside the caller's transaction so the stored
    /// callback and its effect commit together.
    pub async fn complete_by_media_in(
        tx: &mut PgTx<'_, Postgres>,
        media_id: &str,
        confirmation: Confirmation<'_>,
    ) -> Result<Option<Transition>, sqlx::Error> {
        // The common case, a worker's job waiting in `uploaded`, completes in the statement
        // that locks the row; every other case is decided below on what it locked.
        #[allow(clippy::type_complexity)]
        let row: Option<(
            String,
            JobKind,
            JobState,
            Option<i64>,
            Option<String>,
            Option<DateTime<Utc>>,
        )> = sqlx::query_as(
            "WITH cur AS (
                    SELECT ctid AS row_id, job_id, kind, state, max_file_size FROM ingest_jobs
                    WHERE media_id = $1 FOR UPDATE),
                 j AS (
                    UPDATE ingest_jobs SET state = 'completed', updated_at = now(),
                        lease_owner = NULL, lease_expires_at = NULL, completed_at = now(),
                        bytes_uploaded = COALESCE(bytes_total, bytes_uploaded)
                    FROM cur
                    WHERE ingest_jobs.ctid = cur.row_id AND cur.state = 'uploaded'
                      AND NOT (cur.max_file_size IS NOT NULL AND $2::bigint IS NOT NULL
                               AND $2::bigint > cur.max_file_size)
                    RETURNING ingest_jobs.job_id, ingest_jobs.media_id),
                 e AS (
                    INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id, detail)
                    SELECT job_id, 'uploaded', 'completed', media_id,
                        jsonb_build_object('via', $3::text, 'size', $2::bigint)
                    FROM j
                    RETURNING at)
                 SELECT cur.job_id, cur.kind, cur.state, cur.max_file_size,
                        (SELECT media_id FROM j), (SELECT at FROM e)
                 FROM cur",
        )
        .bind(media_id)
        .bind(confirmation.size.map(|s| s as i64))
        .bind(confirmation.via)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((job_id, kind, previous, max_file_size, completed_media, completed_at)) = row
        else {
            return Ok(None);
        };
        if let Some(at) = completed_at {
            return Ok(Some(Transition {
                job_id,
                kind,
                state: JobState::Completed,
                previous_state: Some(JobState::Uploaded),
                media_id: completed_media,
                error_code: None,
                error_message: None,
                at,
            }));
        }
        let via = serde_json::json!({ "via": confirmation.via, "size": confirmation.size });
        match (previous, max_file_size, confirmation.size) {
            (JobState::Uploaded | JobState::AwaitingUpload, Some(max), Some(size))
                if size > max as u64 =>
            {
                let message = format!(
                    "the uploaded file is {size} bytes, over the API key's limit of {max} bytes; \
                     the media stays in VOD: delete it there, or raise the key's limit and complete the job by hand"
                );
                let t = Self::move_in(
                    tx,
                    &job_id,
                    previous,
                    JobState::Failed,
                    EventFields {
                        error_code: Some("UploadTooLarge"),
                        error_message: Some(&message),
                        detail: Some(via),
                        ..Default::default()
                    },
                )
                .await?;
                Ok(Some(t))
            }
            // The reconciler reads the size from VOD (every kind, with the batch reads).
            (JobState::AwaitingUpload, Some(_), None) => {
                let t = Self::move_in(
                    tx,
                    &job_id,
                    previous,
                    JobState::Uploaded,
                    EventFields {
                        detail: Some(via),
                        ..Default::default()
                    },
                )
                .await?;
                Ok(Some(t))
            }
            (JobState::Uploaded | JobState::AwaitingUpload, _, _) => {
                let t = Self::move_in(
                    tx,
                    &job_id,
                    previous,
                    JobState::Completed,
                    EventFields {
                        detail: Some(via),
                        ..Default::default()
                    },
                )
                .await?;
                Ok(Some(t))
            }
            _ => Ok(None),
        }
    }

    /// Moves a job that no worker holds from `from` to `to` (the caller holds its row lock).
    async fn move_in(
        tx: &mut PgTx<'_, Postgres>,
        job_id: &str,
        from: JobState,
        to: JobState,
        fields: EventFields<'_>,
    ) -> Result<Transition, sqlx::Error> {
        let row: JobWithEvent = sqlx::query_as(
            "WITH j AS (
                UPDATE ingest_jobs SET state = $3, updated_at = now(),
                    lease_owner = NULL, lease_expires_at = NULL,
                    completed_at = CASE WHEN $3 = 'completed' THEN now() ELSE completed_at END,
                    uploaded_at = CASE WHEN $3 = 'uploaded' THEN now() ELSE uploaded_at END,
                    bytes_uploaded = CASE WHEN $3 IN ('completed', 'uploaded')
                                     THEN COALESCE(bytes_total, bytes_uploaded) ELSE bytes_uploaded END,
                    last_error_code = COALESCE($4, last_error_code),
                    last_error_message = COALESCE($5, last_error_message)
                WHERE job_id = $1 AND state = $2 RETURNING *),
             e AS (
                INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id, error_code, error_message, detail)
                SELECT job_id, $2, state, media_id, $4, $5, $6 FROM j
                RETURNING at)
             SELECT j.*, e.at AS event_at FROM j, e",
        )
        .bind(job_id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(fields.error_code)
        .bind(fields.error_message)
        .bind(fields.detail)
        .fetch_one(&mut **tx)
        .await?;
        Ok(row.transition(Some(from), fields.error_code, fields.error_message))
    }

    /// Completes the job that owns `media_id`, if it is not already final.
    pub async fn complete_by_media(
        &self,
        media_id: &str,
        confirmation: Confirmation<'_>,
    ) -> Result<Option<Transition>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let t = Self::complete_by_media_in(&mut tx, media_id, confirmation).await?;
        tx.commit().await?;
        Ok(t)
    }

    /// Records a client upload whose credential was just handed out, as `awaiting_upload`.
    pub async fn insert_client_upload(
        &self,
        upload: &NewClientUpload,
    ) -> Result<Transition, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let job: Job = sqlx::query_as(
            "INSERT INTO ingest_jobs (job_id, kind, state, origin, source, title, file_name, request,
                 media_id, upload_endpoint, upload_bucket, upload_key, bytes_total, attempts,
                 api_key_id, max_file_size, credential_expires_at)
             VALUES ($1, $2, 'awaiting_upload', 'client', $3, $4, $5, $6, $7, $8, $9, $10, $11, 1,
                 $12, $13, $14)
             RETURNING *",
        )
        .bind(&upload.job_id)
        .bind(upload.kind.as_str())
        .bind(format!("client:{}", upload.file_name))
        .bind(&upload.title)
        .bind(&upload.file_name)
        .bind(&upload.request)
        .bind(&upload.media_id)
        .bind(&upload.upload_endpoint)
        .bind(&upload.upload_bucket)
        .bind(&upload.upload_key)
        .bind(upload.declared_size as i64)
        .bind(&upload.api_key_id)
        .bind(upload.max_file_size as i64)
        .bind(upload.credential_expires_at)
        .fetch_one(&mut *tx)
        .await?;
        let transition = record(
            &mut tx,
            &job,
            None,
            EventFields {
                detail: Some(serde_json::json!({
                    "api_key_id": upload.api_key_id,
                    "declared_size": upload.declared_size,
                })),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(transition)
    }

    /// The client upload named by its job id or by its current media id (the official JS SDK
    /// knows only the VideoId after a page reload).
    pub async fn find_client_upload(&self, id: &str) -> Result<Option<Job>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM ingest_jobs WHERE origin = 'client' AND (job_id = $1 OR media_id = $1)
             ORDER BY (job_id = $1) DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records a fresh credential for a client upload that is still `awaiting_upload`. A new
    /// media id supersedes the old one (images and attached media cannot be refreshed).
    /// `None` when the job is no longer waiting for its upload.
    pub async fn refresh_client_upload(
        &self,
        job_id: &str,
        refresh: &ClientRefresh,
    ) -> Result<Option<Job>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let previous: Option<Option<String>> = sqlx::query_scalar(
            "SELECT media_id FROM ingest_jobs WHERE job_id = $1 AND state = 'awaiting_upload' FOR UPDATE",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(previous) = previous else {
            return Ok(None);
        };
        let superseded = previous.filter(|old| *old != refresh.media_id);
        let job: Job = sqlx::query_as(
            "UPDATE ingest_jobs SET media_id = $2, upload_endpoint = $3, upload_bucket = $4,
                upload_key = $5, credential_expires_at = $6, attempts = attempts + 1,
                updated_at = now(),
                superseded_media_ids = CASE WHEN $7::text IS NULL THEN superseded_media_ids
                                       ELSE array_append(superseded_media_ids, $7) END
             WHERE job_id = $1 RETURNING *",
        )
        .bind(job_id)
        .bind(&refresh.media_id)
        .bind(&refresh.upload_endpoint)
        .bind(&refresh.upload_bucket)
        .bind(&refresh.upload_key)
        .bind(refresh.credential_expires_at)
        .bind(&superseded)
        .fetch_one(&mut *tx)
        .await?;
        // A history note (same state on both sides): not published as a transition.
        record(
            &mut tx,
            &job,
            Some(JobState::AwaitingUpload),
            EventFields {
                detail: Some(serde_json::json!({
                    "credential": "refreshed",
                    "superseded_media_id": superseded,
                })),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    /// An upload a client made with an STS token (it called CreateUpload* itself), recorded
    /// when VOD's callback reports it, so operators see it. Nothing when the media is known.
    pub async fn record_sts_upload_in(
        tx: &mut PgTx<'_, Postgres>,
        kind: JobKind,
        media_id: &str,
        size: Option<u64>,
        via: &str,
    ) -> Result<Option<Transition>, sqlx::Error> {
        // Not a media a job gave up on (an image or attached media superseded by a new asset).
        let job: Option<Job> = sqlx::query_as(
            "INSERT INTO ingest_jobs (job_id, kind, state, origin, source, request, media_id,
                 bytes_total, bytes_uploaded, uploaded_at, completed_at)
             SELECT $1, $2, 'completed', 'sts', 'sts', '{}', $3, $4, COALESCE($4, 0), now(), now()
             WHERE NOT EXISTS (SELECT 1 FROM ingest_jobs WHERE $3 = ANY (superseded_media_ids))
             ON CONFLICT DO NOTHING
             RETURNING *",
        )
        .bind(format!("sts:{media_id}"))
        .bind(kind.as_str())
        .bind(media_id)
        .bind(size.map(|s| s as i64))
        .fetch_optional(&mut **tx)
        .await?;
        match job {
            Some(job) => {
                let fields = EventFields {
                    detail: Some(serde_json::json!({ "via": via, "size": size })),
                    ..Default::default()
                };
                Ok(Some(record(tx, &job, None, fields).await?))
            }
            None => Ok(None),
        }
    }

    /// Client uploads with no activity (no credential handed out) for `idle`: the reconciler
    /// asks VOD about them.
    pub async fn idle_client_uploads(
        &self,
        idle: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM ingest_jobs WHERE state = 'awaiting_upload'
               AND updated_at < now() - make_interval(secs => $1)
             ORDER BY updated_at LIMIT $2",
        )
        .bind(idle.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Ends a job no worker holds as `failed` (a client upload that never came, ...), if it is
    /// still in `from`.
    pub async fn fail_unleased(
        &self,
        job_id: &str,
        from: JobState,
        error_code: &str,
        error_message: &str,
    ) -> Result<Option<Transition>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let locked: Option<String> = sqlx::query_scalar(
            "SELECT state FROM ingest_jobs WHERE job_id = $1 AND state = $2 FOR UPDATE",
        )
        .bind(job_id)
        .bind(from.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            return Ok(None);
        }
        let t = Self::move_in(
            &mut tx,
            job_id,
            from,
            JobState::Failed,
            EventFields {
                error_code: Some(error_code),
                error_message: Some(error_message),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(t))
    }

    /// Operator: stop a job that is not final. A worker holding it loses its lease.
    pub async fn cancel(
        &self,
        job_id: &str,
    ) -> Result<Result<Transition, MoveRefused>, sqlx::Error> {
        use JobState::*;
        self.operator_move(
            job_id,
            Cancelled,
            &[Queued, AwaitingUpload, Uploading, Retrying, Uploaded],
        )
        .await
    }

    /// A client app ends its own upload before the file arrived: only from `awaiting_upload`
    /// (once a file is in, the upload's fate is VOD's).
    pub async fn cancel_client_upload(
        &self,
        job_id: &str,
    ) -> Result<Result<Transition, MoveRefused>, sqlx::Error> {
        self.operator_move(job_id, JobState::Cancelled, &[JobState::AwaitingUpload])
            .await
    }

    /// Operator: run a failed or cancelled job again.
    pub async fn retry(
        &self,
        job_id: &str,
    ) -> Result<Result<Transition, MoveRefused>, sqlx::Error> {
        self.operator_move(
            job_id,
            JobState::Queued,
            &[JobState::Failed, JobState::Cancelled],
        )
        .await
    }

    async fn operator_move(
        &self,
        job_id: &str,
        to: JobState,
        from: &'static [JobState],
    ) -> Result<Result<Transition, MoveRefused>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let current: Option<(JobState, Origin)> =
            sqlx::query_as("SELECT state, origin FROM ingest_jobs WHERE job_id = $1 FOR UPDATE")
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await?;
        let job_id_owned = || job_id.to_owned();
        let Some((current, origin)) = current else {
            return Ok(Err(MoveRefused::NoSuchJob {
                job_id: job_id_owned(),
            }));
        };
        if to == JobState::Queued && !origin.worker_uploads() {
            return Ok(Err(MoveRefused::UploadedByClient {
                job_id: job_id_owned(),
                origin,
            }));
        }
        if !from.contains(&current) {
            return Ok(Err(MoveRefused::WrongState {
                job_id: job_id_owned(),
                current,
                from,
                to,
            }));
        }
        // A retried job gets a fresh attempt budget; the lease token keeps growing so an old
        // worker's writes stay fenced off.
        let job: Job = sqlx::query_as(
            "UPDATE ingest_jobs SET state = $2, updated_at = now(), run_at = now(),
                lease_owner = NULL, lease_expires_at = NULL, lease_token = lease_token + 1,
                attempts = CASE WHEN $2 = 'queued' THEN 0 ELSE attempts END
             WHERE job_id = $1 RETURNING *",
        )
        .bind(job_id)
        .bind(to.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let t = record(
            &mut tx,
            &job,
            Some(current),
            EventFields {
                detail: Some(serde_json::json!({ "by": "operator" })),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(t))
    }

    pub async fn get(&self, job_id: &str) -> Result<Option<Job>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM ingest_jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn history(&self, job_id: &str) -> Result<Vec<JobEvent>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM ingest_job_events WHERE job_id = $1 ORDER BY id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await
    }

    /// Newest first, optionally only one state.
    pub async fn list(&self, state: Option<JobState>, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM ingest_jobs WHERE ($1::text IS NULL OR state = $1)
             ORDER BY created_at DESC, job_id LIMIT $2",
        )
        .bind(state.map(|s| s.as_str()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Publishes the transitions and media milestones no process has published yet, oldest
    /// first, through `publish`, and marks them. `publish` gets the whole batch (so it can
    /// wait for the broker's confirms together) and answers how many of them, from the first,
    /// are confirmed, and the error that stopped it. One process at a time does this (a
    /// transaction-scoped advisory lock), so consumers see each job's messages in order.
    /// History notes that change no state and are no milestone are marked without being
    /// published. Returns how many were published.
    pub async fn publish_outbox<F, Fut, E>(
        &self,
        batch: i64,
        publish: F,
    ) -> Result<usize, OutboxError<E>>
    where
        F: FnOnce(Vec<OutboxMessage>) -> Fut,
        Fut: std::future::Future<Output = (usize, Option<E>)>,
    {
        let mut tx = self.pool.begin().await?;
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(7310425893)")
            .fetch_one(&mut *tx)
            .await?;
        if !ours {
            return Ok(0);
        }
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            job_id: String,
            kind: JobKind,
            from_state: Option<JobState>,
            to_state: JobState,
            media_id: Option<String>,
            error_code: Option<String>,
            error_message: Option<String>,
            detail: Option<serde_json::Value>,
            milestone: Option<String>,
            at: DateTime<Utc>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            // The kind is looked up by a range on the primary key: with an equality join
            // the planner may pick the console's trigram index on job_id, which costs
            // milliseconds per row (seconds per batch) on a table without statistics yet.
            "SELECT e.id, e.job_id,
                    (SELECT j.kind FROM ingest_jobs j
                     WHERE j.job_id >= e.job_id AND j.job_id <= e.job_id LIMIT 1) AS kind,
                    e.from_state, e.to_state, e.media_id, e.error_code, e.error_message,
                    e.detail, e.milestone, e.at
             FROM ingest_job_events e
             WHERE e.published_at IS NULL
             ORDER BY e.id LIMIT $1",
        )
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        // Per row: its id, and whether it is a message to publish.
        let mut ids = Vec::with_capacity(rows.len());
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            let message = if let Some(milestone) = row.milestone {
                let detail = row.detail.unwrap_or(serde_json::Value::Null);
                Some(OutboxMessage::Media(MediaMilestone {
                    job_id: row.job_id,
                    kind: row.kind,
                    milestone,
                    media_id: row.media_id,
                    media_status: detail
                        .get("media_status")
                        .and_then(|s| s.as_str())
                        .map(str::to_owned),
                    state: row.to_state,
                    error_code: row.error_code,
                    error_message: row.error_message,
                    detail,
                    at: row.at,
                }))
            } else if row.from_state != Some(row.to_state) {
                Some(OutboxMessage::Job(Transition {
                    job_id: row.job_id,
                    kind: row.kind,
                    state: row.to_state,
                    previous_state: row.from_state,
                    media_id: row.media_id,
                    error_code: row.error_code,
                    error_message: row.error_message,
                    at: row.at,
                }))
            } else {
                None
            };
            ids.push((row.id, message.is_some()));
            messages.extend(message);
        }
        let (confirmed, error) = if messages.is_empty() {
            (0, None)
        } else {
            publish(messages).await
        };
        // Rows up to the first unconfirmed message are done; the rest waits for the next pass
        // (a message confirmed after an unconfirmed one goes out again: at least once).
        let mut seen = 0;
        let done: Vec<i64> = ids
            .iter()
            .take_while(|(_, is_message)| {
                if *is_message {
                    seen += 1;
                    seen <= confirmed
                } else {
                    true
                }
            })
            .map(|(id, _)| *id)
            .collect();
        if !done.is_empty() {
            sqlx::query("UPDATE ingest_job_events SET published_at = now() WHERE id = ANY($1)")
                .bind(&done)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        match error {
            Some(e) => Err(OutboxError::Publish(e)),
            None => Ok(confirmed),
        }
    }

    /// Jobs per state, for `/metrics` and the CLI.
    pub async fn count_by_state(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT state, count(*) FROM ingest_jobs GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct FinishBinds<'a> {
    error_code: Option<&'a str>,
    error_message: Option<&'a str>,
    run_at: Option<DateTime<Utc>>,
}
