//! The store's batch paths for many small jobs: one statement records a batch of deliveries,
//! one statement claims several jobs, one stores the media ids of several jobs and one marks
//! several uploaded. Each statement writes the rows and their history together (one implicit
//! transaction), so the invariants of `store` hold: a row exists only with its history, and its
//! history row is what the outbox publishes.

use chrono::{DateTime, Utc};

use super::message::JobSpec;
use super::model::{JobState, Origin};
use super::store::{Inserted, Job, JobStore, Lease, StoreError, Transition};
use super::JobKind;
use crate::vod::UploadAddress;

/// One transition of `ingest_mark_uploaded_many`.
#[derive(sqlx::FromRow)]
struct Moved {
    moved_job_id: String,
    to_state: JobState,
    kind: JobKind,
    media_id: Option<String>,
    at: DateTime<Utc>,
}

/// A media id and upload address to store on a leased job before its first byte goes out
/// (invariant 2 in `docs/design.md`), for [`JobStore::set_media_many`].
#[derive(Debug, Clone)]
pub struct MediaAssignment {
    pub job_id: String,
    pub token: i64,
    pub media_id: String,
    pub address: UploadAddress,
    pub bytes_total: Option<u64>,
}

/// A job row with the time of the history row written with it.
#[derive(sqlx::FromRow)]
struct Recorded {
    #[sqlx(flatten)]
    job: Job,
    previous: Option<JobState>,
    event_at: DateTime<Utc>,
}

impl Recorded {
    fn transition(&self) -> Transition {
        let job = &self.job;
        Transition {
            job_id: job.job_id.clone(),
            kind: job.kind,
            state: job.state,
            previous_state: self.previous,
            media_id: job.media_id.clone(),
            error_code: None,
            error_message: None,
            at: self.event_at,
        }
    }
}

impl JobStore {
    /// Records validated jobs as `queued`, idempotent on `job_id`, in one statement. The answer
    /// has one entry per spec, in order: duplicates (of an existing job, or of an earlier spec
    /// in the same batch) create nothing.
    pub async fn insert_batch(
        &self,
        specs: &[JobSpec],
        origin: Origin,
    ) -> Result<Vec<Inserted>, sqlx::Error> {
        if specs.is_empty() {
            return Ok(vec![]);
        }
        let mut ids = Vec::with_capacity(specs.len());
        let mut kinds = Vec::with_capacity(specs.len());
        let mut sources = Vec::with_capacity(specs.len());
        let mut titles = Vec::with_capacity(specs.len());
        let mut file_names = Vec::with_capacity(specs.len());
        let mut requests = Vec::with_capacity(specs.len());
        for spec in specs {
            ids.push(spec.job_id.clone());
            kinds.push(spec.kind.as_str().to_owned());
            sources.push(spec.source.display());
            titles.push(spec.title.clone());
            file_names.push(spec.file_name.clone());
            requests.push(serde_json::to_value(&spec.message).expect("a message serializes"));
        }
        // DISTINCT ON keeps the first of two specs with one job_id: ON CONFLICT cannot touch
        // a row twice in one statement.
        let rows: Vec<Recorded> = sqlx::query_as(
            "WITH input AS (
                SELECT DISTINCT ON (job_id) * FROM unnest($1::text[], $2::text[], $3::text[],
                    $4::text[], $5::text[], $6::jsonb[]) WITH ORDINALITY
                    AS t(job_id, kind, source, title, file_name, request, n)
                ORDER BY job_id, n),
             j AS (
                INSERT INTO ingest_jobs (job_id, kind, state, origin, source, title, file_name, request)
                SELECT job_id, kind, 'queued', $7, source, title, file_name, request
                FROM input ORDER BY n
                ON CONFLICT (job_id) DO NOTHING
                RETURNING *),
             e AS (
                INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id)
                SELECT job_id, NULL, state, media_id FROM j
                RETURNING job_id, at)
             SELECT j.*, NULL::text AS previous, e.at AS event_at FROM j JOIN e USING (job_id)",
        )
        .bind(&ids)
        .bind(&kinds)
        .bind(&sources)
        .bind(&titles)
        .bind(&file_names)
        .bind(&requests)
        .bind(origin.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut created: std::collections::HashMap<String, Transition> = rows
            .iter()
            .map(|r| (r.job.job_id.clone(), r.transition()))
            .collect();
        Ok(specs
            .iter()
            .map(|spec| match created.remove(&spec.job_id) {
                Some(t) => Inserted::Created(t),
                None => Inserted::Duplicate,
            })
            .collect())
    }

    /// Claims up to `limit` runnable jobs for `owner` in one statement: due `queued` and
    /// `retrying` jobs first (oldest `run_at` first), then `uploading` jobs whose lease expired
    /// (their worker died). Rows locked by another claimer are skipped, so two workers never
    /// get the same job.
    ///
    /// The update finds the picked rows by `ctid` (stable while they are locked): joined on
    /// `job_id`, PostgreSQL's planner prefers the trigram index of the console's search
    /// (`ingest_jobs_job_id_trgm`), which costs milliseconds per row instead of microseconds.
    pub async fn claim_batch(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<(Lease, Transition)>, sqlx::Error> {
        let rows: Vec<Recorded> = sqlx::query_as(
            "WITH due AS (
                SELECT ctid AS row_id, job_id, state, run_at FROM ingest_jobs
                WHERE state IN ('queued', 'retrying') AND run_at <= now()
                ORDER BY run_at LIMIT $1
                FOR UPDATE SKIP LOCKED),
             expired AS (
                SELECT ctid AS row_id, job_id, state, run_at FROM ingest_jobs
                WHERE state = 'uploading' AND lease_expires_at < now()
                ORDER BY lease_expires_at LIMIT $1
                FOR UPDATE SKIP LOCKED),
             picked AS (
                SELECT * FROM due
                UNION ALL
                (SELECT * FROM expired LIMIT GREATEST(0, $1 - (SELECT count(*) FROM due)))),
             j AS (
                UPDATE ingest_jobs SET state = 'uploading', attempts = attempts + 1,
                    lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3),
                    lease_token = lease_token + 1, updated_at = now()
                FROM picked WHERE ingest_jobs.ctid = picked.row_id
                RETURNING ingest_jobs.*, picked.state AS previous, picked.run_at AS picked_run_at),
             e AS (
                INSERT INTO ingest_job_events (job_id, from_state, to_state, media_id, detail)
                SELECT job_id, previous, state, media_id,
                    jsonb_build_object('worker', $2::text, 'attempt', attempts,
                        'rescued', previous = 'uploading')
                FROM j
                RETURNING job_id, at)
             SELECT j.*, e.at AS event_at FROM j JOIN e USING (job_id) ORDER BY j.picked_run_at",
        )
        .bind(limit as i64)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let transition = r.transition();
                let rescued = r.previous == Some(JobState::Uploading);
                let token = r.job.lease_token;
                (
                    Lease {
                        job: r.job,
                        token,
                        rescued,
                    },
                    transition,
                )
            })
            .collect())
    }

    /// Stores the media id and upload address of each job (`set_media` for many jobs, in one
    /// round trip). The answer has one entry per assignment, in order: `LeaseLost` for a job
    /// that is no longer this worker's.
    pub async fn set_media_many(
        &self,
        assignments: &[MediaAssignment],
    ) -> Result<Vec<Result<(), StoreError>>, sqlx::Error> {
        let column = |f: fn(&MediaAssignment) -> String| -> Vec<String> {
            assignments.iter().map(f).collect()
        };
        let tokens: Vec<i64> = assignments.iter().map(|a| a.token).collect();
        let totals: Vec<Option<i64>> = assignments
            .iter()
            .map(|a| a.bytes_total.map(|b| b as i64))
            .collect();
        let written: Vec<String> =
            sqlx::query_scalar("SELECT * FROM ingest_set_media_many($1, $2, $3, $4, $5, $6, $7)")
                .bind(column(|a| a.job_id.clone()))
                .bind(tokens)
                .bind(column(|a| a.media_id.clone()))
                .bind(column(|a| a.address.endpoint.clone()))
                .bind(column(|a| a.address.bucket.clone()))
                .bind(column(|a| a.address.file_name.clone()))
                .bind(totals)
                .fetch_all(self.pool())
                .await?;
        let written: std::collections::HashSet<String> = written.into_iter().collect();
        Ok(assignments
            .iter()
            .map(|a| {
                if written.contains(&a.job_id) {
                    Ok(())
                } else {
                    Err(StoreError::LeaseLost(a.job_id.clone()))
                }
            })
            .collect())
    }

    /// Marks each leased job `uploaded` (and `completed` at once when VOD's confirmation is
    /// already stored): `mark_uploaded` for many jobs, in one round trip, through the database
    /// function `ingest_mark_uploaded_many` (migrations), whose statements keep their own
    /// snapshots per job. The answer has one entry per lease, in order: the job's transitions,
    /// or `LeaseLost`.
    pub async fn mark_uploaded_many(
        &self,
        leases: &[(String, i64)],
    ) -> Result<Vec<Result<Vec<Transition>, StoreError>>, sqlx::Error> {
        static COMPLETION_EVENTS: std::sync::LazyLock<serde_json::Value> =
            std::sync::LazyLock::new(|| {
                JobKind::ALL
                    .iter()
                    .map(|k| (k.as_str().to_owned(), k.completion_event().into()))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            });
        let ids: Vec<&str> = leases.iter().map(|(id, _)| id.as_str()).collect();
        let tokens: Vec<i64> = leases.iter().map(|(_, t)| *t).collect();
        let rows: Vec<Moved> =
            sqlx::query_as("SELECT * FROM ingest_mark_uploaded_many($1, $2, $3)")
                .bind(&ids)
                .bind(&tokens)
                .bind(&*COMPLETION_EVENTS)
                .fetch_all(self.pool())
                .await?;
        // Rows come job by job, each job's in order.
        let mut moved: std::collections::HashMap<String, Vec<Transition>> =
            std::collections::HashMap::new();
        for Moved {
            moved_job_id: job_id,
            to_state: state,
            kind,
            media_id,
            at,
        } in rows
        {
            let transitions = moved.entry(job_id.clone()).or_default();
            let previous = transitions
                .last()
                .map_or(JobState::Uploading, |t: &Transition| t.state);
            transitions.push(Transition {
                job_id,
                kind,
                state,
                previous_state: Some(previous),
                media_id,
                error_code: None,
                error_message: None,
                at,
            });
        }
        Ok(leases
            .iter()
            .map(|(job_id, _)| {
                moved
                    .remove(job_id)
                    .ok_or_else(|| StoreError::LeaseLost(job_id.clone()))
            })
            .collect())
    }
}
