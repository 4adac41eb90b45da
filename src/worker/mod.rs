//! The worker: claims jobs from PostgreSQL under a lease, gets an upload address and credential
//! from VOD, stores the media id, uploads the source to OSS and marks the job `uploaded`.
//!
//! RabbitMQ only feeds the job table (see [`crate::queue`]); claiming from the table is what
//! makes retries, rescue of jobs whose worker died, and cancellation work (River's design).

mod error;
pub(crate) mod m3u8;
mod upload;
mod writes;

pub use error::JobError;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::jobs::OutboxWaker;
use crate::jobs::{
    Checkpoints, Job, JobKind, JobMessage, JobState, JobStore, Lease, Source, StoreError,
};
use crate::oss::{ObjectTarget, OssClient, OssCredentials};
use crate::source::OpenedSource;
use crate::vod::{UploadTicket, VodClient};
use upload::Content;

/// How a worker process behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs uploaded at once by this process (`VOD_INGEST_CONCURRENCY`).
    pub concurrency: usize,
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: Duration,
    /// How often idle slots look for due retries and rescuable jobs.
    pub poll_interval: Duration,
    /// First retry delay; doubles per attempt, with ±10 % jitter, capped at ten minutes.
    pub retry_base: Duration,
    /// How often `bytes_uploaded` is written while a file uploads.
    pub progress_interval: Duration,
    /// Canonicalised `VOD_INGEST_SOURCE_ROOTS`, re-checked when a job runs.
    pub source_roots: Vec<PathBuf>,
    /// Names this process in leases and history (host and pid by default).
    pub owner: String,
    /// Upper bound of the renewal margin: a credential is renewed when less than a fifth of
    /// its lifetime, and at most this much, is left.
    pub credential_margin: Duration,
    /// Sources of at least this many bytes use a multipart upload.
    pub multipart_threshold: u64,
    /// Preferred part size; grown so that no upload needs more than 10,000 parts.
    pub part_size: u64,
    /// Parts in flight per job.
    pub part_parallelism: usize,
    /// What `http(s)://` sources may do.
    pub remote: crate::source::RemotePolicy,
}

impl WorkerConfig {
    pub fn new(source_roots: Vec<PathBuf>) -> Self {
        Self {
            concurrency: 4,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            retry_base: Duration::from_secs(5),
            progress_interval: Duration::from_secs(1),
            source_roots,
            owner: default_owner(),
            credential_margin: Duration::from_secs(300),
            multipart_threshold: 32 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            part_parallelism: 4,
            remote: crate::source::RemotePolicy::default(),
        }
    }
}

fn default_owner() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Jobs one claim statement takes at most.
const MAX_CLAIM: usize = 64;

/// With jobs waiting, a claim waits up to `CLAIM_GATHER` for `MIN_CLAIM` free slots.
const MIN_CLAIM: usize = 4;
const CLAIM_GATHER: Duration = Duration::from_millis(2);

/// Retry delay for the `attempt`-th failure: exponential with jitter, capped.
pub fn retry_delay(base: Duration, attempt: i32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.clamp(1, 16).saturating_sub(1) as u32);
    let capped = exp.min(Duration::from_secs(600));
    let jitter = rand::thread_rng().gen_range(0.9..1.1);
    capped.mul_f64(jitter)
}

pub struct Worker {
    store: JobStore,
    checkpoints: Checkpoints,
    vod: VodClient,
    oss: OssClient,
    config: WorkerConfig,
    outbox: OutboxWaker,
    wake: Arc<Notify>,
    writes: writes::GroupWrites,
}

impl Worker {
    pub fn new(
        store: JobStore,
        vod: VodClient,
        oss: OssClient,
        config: WorkerConfig,
        outbox: OutboxWaker,
        wake: Arc<Notify>,
    ) -> Arc<Self> {
        Arc::new(Self {
            checkpoints: Checkpoints::new(store.pool().clone()),
            writes: writes::GroupWrites::start(store.clone()),
            store,
            vod,
            oss,
            config,
            outbox,
            wake,
        })
    }

    /// Keeps up to `concurrency` jobs in flight, claiming as many as there are free slots
    /// with one statement. After `intake` no new job is claimed, and `run` returns once the
    /// jobs in flight have finished; after `abort` those stop too, and each releases its
    /// lease explicitly, so another worker takes the job at once instead of after the lease
    /// expires (a clean hand-over on shutdown).
    pub async fn run(self: Arc<Self>, intake: CancellationToken, abort: CancellationToken) {
        tracing::info!(owner = %self.config.owner, concurrency = self.config.concurrency, "worker started");
        let slots = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency.max(1)));
        let mut jobs = tokio::task::JoinSet::new();
        let mut backlog = false;
        while !intake.is_cancelled() {
            let first = tokio::select! {
                _ = intake.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore stays open"),
            };
            let mut permits = vec![first];
            // Slots free up one job at a time: while jobs are waiting (the last claim filled
            // every slot it had), let a few more free up, so one statement claims for several.
            let gather_until = tokio::time::Instant::now() + CLAIM_GATHER;
            loop {
                while permits.len() < MAX_CLAIM {
                    match slots.clone().try_acquire_owned() {
                        Ok(p) => permits.push(p),
                        Err(_) => break,
                    }
                }
                if !backlog || permits.len() >= MIN_CLAIM || permits.len() >= MAX_CLAIM {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(gather_until) => break,
                    permit = slots.clone().acquire_owned() => permits.push(permit.expect("the semaphore stays open")),
                }
            }
            match self
                .store
                .claim_batch(&self.config.owner, self.config.lease, permits.len())
                .await
            {
                Ok(claimed) if !claimed.is_empty() => {
                    backlog = claimed.len() == permits.len();
                    self.outbox.wake();
                    for (lease, _) in claimed {
                        let permit = permits.pop().expect("no more jobs than permits");
                        let (worker, abort) = (self.clone(), abort.clone());
                        jobs.spawn(async move {
                            worker.process(lease, &abort).await;
                            drop(permit);
                        });
                    }
                }
                Ok(_) => {
                    backlog = false;
                    drop(permits);
                    tokio::select! {
                        _ = intake.cancelled() => {}
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
                Err(e) => {
                    drop(permits);
                    tracing::error!(error = %e, "could not claim jobs; is PostgreSQL up?");
                    tokio::select! {
                        _ = intake.cancelled() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
            }
            while jobs.try_join_next().is_some() {}
        }
        while jobs.join_next().await.is_some() {}
        tracing::info!("worker stopped");
    }

    /// Runs one job now, in this task (`vod-ingest upload`); returns its row afterwards.
    pub async fn run_one(&self, job_id: &str) -> anyhow::Result<Job> {
        let shutdown = CancellationToken::new();
        let Some((lease, _)) = self
            .store
            .claim_job(job_id, &self.config.owner, self.config.lease)
            .await?
        else {
            anyhow::bail!("job {job_id} is not runnable (it is running elsewhere, or finished)");
        };
        self.outbox.wake();
        self.process(lease, &shutdown).await;
        self.store
            .get(job_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("job {job_id} disappeared"))
    }

    async fn process(&self, lease: Lease, shutdown: &CancellationToken) {
        let span = tracing::info_span!("job", job_id = %lease.job.job_id, kind = %lease.job.kind, attempt = lease.job.attempts);
        self.process_in_span(lease, shutdown).instrument(span).await
    }

    async fn process_in_span(&self, lease: Lease, shutdown: &CancellationToken) {
        let job_id = lease.job.job_id.clone();
        let token = lease.token;
        if lease.rescued {
            tracing::warn!("rescued a job whose previous worker stopped renewing its lease");
        }
        if lease.job.attempts > lease.job.max_attempts {
            let message = format!(
                "gave up after {} attempts; last error: {}",
                lease.job.max_attempts,
                lease
                    .job
                    .last_error_message
                    .as_deref()
                    .unwrap_or("none recorded")
            );
            self.finish(
                self.store
                    .fail(&job_id, token, "AttemptsExhausted", &message)
                    .await,
            );
            return;
        }

        // The lease is renewed alongside the upload, in this task (no task of its own per
        // job); losing it stops the upload.
        let heartbeat = async {
            let lease_len = self.config.lease;
            loop {
                tokio::time::sleep(lease_len / 3).await;
                match self.store.renew(&job_id, token, lease_len).await {
                    Ok(()) => {}
                    Err(StoreError::LeaseLost(_)) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not renew the lease; will try again")
                    }
                }
            }
        };

        let result = tokio::select! {
            r = self.upload(&lease.job, token) => r,
            _ = heartbeat => Err(JobError::LeaseLost),
            // Parts in flight are dropped; finished ones are checkpointed already.
            _ = shutdown.cancelled() => Err(JobError::ShuttingDown),
        };

        match result {
            Ok(()) => match self.writes.mark_uploaded(&job_id, token).await {
                Ok(transitions) => {
                    for t in transitions {
                        tracing::info!(state = %t.state, "job moved on");
                        self.outbox.wake();
                    }
                }
                Err(e) => self.finish(Err(e)),
            },
            Err(JobError::LeaseLost) => {
                tracing::warn!("lost the lease (cancelled, or rescued by another worker); stopped");
                let cancelled = matches!(
                    self.store.get(&job_id).await,
                    Ok(Some(job)) if job.state() == JobState::Cancelled
                );
                if cancelled {
                    self.abandon_multipart(&lease.job).await;
                }
            }
            Err(JobError::ShuttingDown) => match self.store.release(&job_id, token).await {
                Ok(_) => {
                    tracing::info!("shutting down: released the job for another worker");
                    self.outbox.wake();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "shutting down: could not release the job; it will be rescued when its lease expires")
                }
            },
            Err(e) => {
                let attempts = lease.job.attempts;
                let code = e.code();
                let message = e.to_string();
                if e.is_retryable() && attempts < lease.job.max_attempts {
                    let delay = retry_delay(self.config.retry_base, attempts);
                    tracing::warn!(error = %message, code = %code, retry_in = ?delay, "upload failed; will retry");
                    let run_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    self.finish(
                        self.store
                            .schedule_retry(&job_id, token, &code, &message, run_at)
                            .await,
                    );
                } else {
                    tracing::error!(error = %message, code = %code, "job failed");
                    self.finish(self.store.fail(&job_id, token, &code, &message).await);
                    self.abandon_multipart(&lease.job).await;
                }
            }
        }
    }

    fn finish(&self, result: Result<crate::jobs::Transition, StoreError>) {
        match result {
            Ok(transition) => {
                tracing::info!(state = %transition.state, "job moved on");
                self.outbox.wake();
            }
            Err(StoreError::LeaseLost(_)) => {
                tracing::warn!("lost the lease before recording the outcome")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record the outcome; the lease will expire and the job will be retried")
            }
        }
    }

    /// Credentials, media id, bytes: everything up to `uploaded`.
    async fn upload(&self, job: &Job, token: i64) -> Result<(), JobError> {
        let message: JobMessage = serde_json::from_value(job.request.clone())
            .map_err(|e| JobError::Corrupt(format!("stored request does not parse: {e}")))?;
        let source = self.open_source(&job.source).await?;
        // A playlist is read and checked, and its files opened, before VOD is asked for
        // anything: a bad playlist creates no video and uploads nothing. From here on it takes
        // the same path as any upload.
        let content = if m3u8::applies(job, &message) {
            Content::Playlist(m3u8::Playlist::open(source, &job.source, &self.config).await?)
        } else {
            Content::Source(source)
        };
        let size = content.size();

        let ticket = self.obtain_ticket(job, &message, size).await?;
        let session = upload::Session::start(self, job, token, &message, size, ticket).await?;
        let result = tokio::select! {
            r = session.run(&content) => r,
            _ = session.write_progress() => unreachable!("progress is written until the upload ends"),
        };
        if result.is_ok() {
            metrics::counter!("vod_ingest_bytes_uploaded_total").increment(size);
        }
        result
    }

    async fn open_source(&self, stored: &str) -> Result<OpenedSource, JobError> {
        match Source::from_stored(stored) {
            Source::Local(path) => {
                let path = self.check_source(&path)?;
                OpenedSource::local(&path)
                    .await
                    .map_err(|e| JobError::source(&path, e))
            }
            Source::Remote(url) => Ok(crate::source::open_remote(&url, &self.config.remote).await?),
        }
    }

    /// Aborts the job's multipart upload, if it has one, so OSS frees its parts. Videos get a
    /// credential for that with RefreshUploadVideo; images and attached media cannot get one
    /// for their old address, so their parts are left to the bucket's lifecycle rules.
    async fn abandon_multipart(&self, job: &Job) {
        let Ok(Some(cp)) = self.checkpoints.load(&job.job_id).await else {
            return;
        };
        if job.kind() == JobKind::Video {
            match self.vod.refresh_upload_video(&cp.media_id).await {
                Ok(ticket) => {
                    let target = ObjectTarget {
                        endpoint: ticket.address.endpoint.clone(),
                        bucket: cp.bucket.clone(),
                        key: cp.object_key.clone(),
                    };
                    let creds = OssCredentials::from_upload_auth(&ticket.auth);
                    match self
                        .oss
                        .abort_multipart_upload(&target, &creds, &cp.upload_id)
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(upload_id = %cp.upload_id, "aborted the multipart upload")
                        }
                        Err(e) => {
                            tracing::warn!(upload_id = %cp.upload_id, error = %e, "could not abort the multipart upload")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no credential to abort the multipart upload with")
                }
            }
        }
        let _ = self.checkpoints.delete(&job.job_id).await;
    }

    /// A video that already has a VideoId keeps it (RefreshUploadVideo); anything else gets a
    /// new asset.
    async fn obtain_ticket(
        &self,
        job: &Job,
        message: &JobMessage,
        size: u64,
    ) -> Result<UploadTicket, JobError> {
        if let (JobKind::Video, Some(video_id)) = (job.kind(), job.media_id.as_deref()) {
            match self.vod.refresh_upload_video(video_id).await {
                Ok(ticket) => return Ok(ticket),
                Err(e) if e.code() == "InvalidVideo.NotFound" => {
                    tracing::warn!(video_id, "the video is gone from VOD; creating a new one");
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.create_asset(job.kind(), message, size).await
    }

    async fn create_asset(
        &self,
        kind: JobKind,
        m: &JobMessage,
        size: u64,
    ) -> Result<UploadTicket, JobError> {
        let ticket = self.vod.create_upload(&m.vod_request(kind, size)).await?;
        tracing::info!(media_id = %ticket.media_id, request_id = %ticket.request_id, "VOD issued an upload address");
        Ok(ticket)
    }

    fn check_source(&self, path: &Path) -> Result<PathBuf, JobError> {
        let canonical = std::fs::canonicalize(path).map_err(|e| JobError::source(path, e))?;
        if !self
            .config
            .source_roots
            .iter()
            .any(|root| canonical.starts_with(root))
        {
            return Err(JobError::SourceNotAllowed(canonical));
        }
        Ok(canonical)
    }
}
