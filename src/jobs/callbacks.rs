//! The store's batch path for VOD's callbacks: a batch of callbacks is stored and applied in one
//! transaction of four round trips (begin, store-and-lock, write, commit), however many it
//! holds, instead of several round trips and a commit (a WAL flush) for each.
//!
//! [`JobStore::store_callbacks_in`] stores the events and locks the jobs that own their media,
//! in `job_id` order (so two batches cannot deadlock on each other); the caller applies each
//! new event to a [`JobDraft`] of its job in memory, in arrival order, and
//! [`JobStore::write_drafts_in`] writes every draft with its history rows (and marks the upload
//! events that completed a job applied), in one statement. Jobs a draft does not handle (see
//! [`JobDraft::needs_row_by_row`]) are applied row by row in the same transaction.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, Transaction as PgTx};

use super::media::{
    derive_status, history_detail, milestones, MediaDetail, MediaUpdate, RawCallback,
};
use super::model::{JobKind, JobState};
use super::store::{JobStore, Transition};

/// The job that owns a callback's media: locked by a batch ([`JobStore::store_callbacks_in`]),
/// or read without a lock on a lone callback's path ([`JobStore::store_unowned_or_read_owner`]).
#[derive(Debug, Clone)]
pub(super) struct LockedJob {
    pub job_id: String,
    pub kind: JobKind,
    pub state: JobState,
    pub media_id: String,
    pub media_status: Option<String>,
    pub media_detail: Value,
    /// [`ROW_BY_ROW`] held when the job was read.
    pub row_by_row: bool,
}

/// Which jobs a [`JobDraft`] does not handle: those whose confirmation is checked against an
/// API key's size limit, or that wait for a client's upload (`complete_by_media_in` decides
/// those, and the confirmer asks VOD). The one spelling of the rule: both statements that read
/// a callback's owner select it, so the batch's insert can store a processing event as applied
/// at once exactly when the draft will apply it. A draft's job never changes in a way that
/// changes the answer (a row-by-row job observes nothing; a drafted one only completes).
const ROW_BY_ROW: &str =
    "(state = 'awaiting_upload' OR (state = 'uploaded' AND max_file_size IS NOT NULL))";

/// A callback for [`JobStore::store_callbacks_in`].
#[derive(Debug, Clone, Copy)]
pub(super) struct ToStore<'a> {
    pub raw: RawCallback<'a>,
    /// A processing event: applied to the job that owns its media whatever the job's state
    /// (unless the job is applied row by row), so it is stored as applied at once.
    pub processing: bool,
}

/// One stored callback of a batch: its row id, or `None` when an earlier delivery of the same
/// event is stored (a duplicate); and the job that owns its media, if any (locked).
#[derive(Debug)]
pub(super) struct Stored {
    pub id: Option<i64>,
    pub owner: Option<LockedJob>,
}

/// What one event says, as [`JobDraft::observe`] needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Observation<'a> {
    pub event_type: &'a str,
    /// The kind whose upload this event reports complete, for the three upload events.
    pub upload_kind: Option<JobKind>,
    pub succeeded: bool,
    pub size: Option<u64>,
    pub update: Option<&'a MediaUpdate>,
}

/// A history row to write, in order.
#[derive(Debug)]
struct HistoryRow {
    from_state: JobState,
    to_state: JobState,
    error_code: Option<String>,
    error_message: Option<String>,
    detail: Value,
    milestone: Option<&'static str>,
}

/// A locked job with the batch's events applied in memory: what [`JobStore::write_drafts_in`]
/// writes. The same decisions as the row-by-row path (`complete_by_media_in`,
/// `apply_media_in`) for the jobs it handles.
#[derive(Debug)]
pub(super) struct JobDraft {
    job_id: String,
    kind: JobKind,
    media_id: String,
    state: JobState,
    media_status: Option<String>,
    detail: MediaDetail,
    row_by_row: bool,
    /// The job completes (from `uploaded`).
    completes: bool,
    media_changed: bool,
    history: Vec<HistoryRow>,
}

impl JobDraft {
    pub(super) fn new(job: &LockedJob) -> Self {
        Self {
            job_id: job.job_id.clone(),
            kind: job.kind,
            media_id: job.media_id.clone(),
            state: job.state,
            media_status: job.media_status.clone(),
            detail: MediaDetail::from_json(&job.media_detail),
            row_by_row: job.row_by_row,
            completes: false,
            media_changed: false,
            history: Vec::new(),
        }
    }

    pub(super) fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The job's state, with the batch's events so far applied.
    pub(super) fn state(&self) -> JobState {
        self.state
    }

    /// Whether the job is applied row by row instead ([`ROW_BY_ROW`], as read with the job).
    pub(super) fn needs_row_by_row(&self) -> bool {
        self.row_by_row
    }

    /// Applies one stored (not duplicate) event; returns whether the event is marked applied:
    /// an upload event when it completed the job (one that beat the worker stays unapplied, for
    /// `mark_uploaded` to find), a processing event always.
    pub(super) fn observe(&mut self, event: Observation<'_>) -> bool {
        debug_assert!(!self.needs_row_by_row());
        let mut applied = false;
        if event.upload_kind.is_some() && event.succeeded && self.state == JobState::Uploaded {
            self.complete(event.event_type, event.size);
            applied = true;
        }
        let Some(update) = event.update else {
            return applied;
        };
        // A processing event proves VOD has the file: it completes a job whose upload event
        // was lost.
        let proves_upload = update.uploaded || update.transcoding || !update.steps.is_empty();
        if event.upload_kind.is_none() && proves_upload && self.state == JobState::Uploaded {
            self.complete(event.event_type, None);
        }
        let old = self.detail.clone();
        let changed = self.detail.merge(update);
        let new_status = derive_status(
            self.kind,
            self.media_status.as_deref(),
            &self.detail,
            update,
        );
        if changed || new_status != self.media_status {
            for m in milestones(
                self.media_status.as_deref(),
                new_status.as_deref(),
                &old,
                &self.detail,
            ) {
                self.history.push(HistoryRow {
                    from_state: self.state,
                    to_state: self.state,
                    error_code: m.error_code,
                    error_message: m.error_message,
                    detail: history_detail(m.detail, new_status.as_deref()),
                    milestone: Some(m.name),
                });
            }
            self.media_status = new_status;
            self.media_changed = true;
        }
        applied || event.upload_kind.is_none()
    }

    fn complete(&mut self, via: &str, size: Option<u64>) {
        self.history.push(HistoryRow {
            from_state: JobState::Uploaded,
            to_state: JobState::Completed,
            error_code: None,
            error_message: None,
            detail: serde_json::json!({ "via": via, "size": size }),
            milestone: None,
        });
        self.state = JobState::Completed;
        self.completes = true;
    }

    fn writes(&self) -> bool {
        self.completes || self.media_changed || !self.history.is_empty()
    }
}

/// What a batch's write did, for the caller to report after the commit.
#[derive(Debug, Default)]
pub(super) struct DraftsWritten {
    /// The jobs' own transitions (a completion), in order.
    pub transitions: Vec<Transition>,
    /// History rows written (transitions and milestones): the outbox has news.
    pub history_rows: usize,
}

impl JobStore {
    /// Stores `callbacks` (deliveries already stored are skipped: duplicates) and locks the
    /// jobs that own their media, in `job_id` order. One entry per callback, in order. The
    /// callbacks must carry distinct dedup keys.
    pub(super) async fn store_callbacks_in(
        tx: &mut PgTx<'_, Postgres>,
        callbacks: &[ToStore<'_>],
    ) -> Result<Vec<Stored>, sqlx::Error> {
        let n = callbacks.len();
        let mut verification = Vec::with_capacity(n);
        let mut event_type = Vec::with_capacity(n);
        let mut media_id = Vec::with_capacity(n);
        let mut signature_timestamp = Vec::with_capacity(n);
        let mut dedup_key = Vec::with_capacity(n);
        let mut headers = Vec::with_capacity(n);
        let mut body = Vec::with_capacity(n);
        let mut event_time = Vec::with_capacity(n);
        let mut processing = Vec::with_capacity(n);
        for c in callbacks {
            let raw = &c.raw;
            verification.push(raw.verification);
            event_type.push(raw.event_type);
            media_id.push(raw.media_id);
            signature_timestamp.push(raw.signature_timestamp);
            dedup_key.push(raw.dedup_key);
            headers.push(raw.headers);
            body.push(raw.body);
            event_time.push(raw.event_time);
            processing.push(c.processing);
        }
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH owners AS (
                 SELECT job_id, kind, state, media_id, media_status, media_detail,
                        {ROW_BY_ROW} AS row_by_row
                 FROM ingest_jobs WHERE media_id = ANY($3::text[])
                 ORDER BY job_id FOR UPDATE
             ), ev AS (
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[],
                                      $6::jsonb[], $7::bytea[], $8::timestamptz[], $9::bool[])
                     WITH ORDINALITY AS e(verification, event_type, media_id, signature_timestamp,
                                          dedup_key, headers, body, event_time, processing, ord)
             ), ins AS (
                 INSERT INTO vod_events (verification, event_type, media_id, signature_timestamp,
                                         dedup_key, headers, body, event_time, applied, job_id)
                 SELECT ev.verification, ev.event_type, ev.media_id, ev.signature_timestamp,
                        ev.dedup_key, ev.headers, ev.body, ev.event_time,
                        applies.job_id IS NOT NULL, applies.job_id
                 FROM ev LEFT JOIN LATERAL (
                     SELECT o.job_id FROM owners o
                     WHERE ev.processing AND o.media_id = ev.media_id AND NOT o.row_by_row
                 ) applies ON true
                 ORDER BY ev.ord
                 ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
                 RETURNING id, dedup_key
             )
             SELECT ins.id, o.job_id, o.kind, o.state, o.media_id, o.media_status,
                    o.media_detail, o.row_by_row
             FROM ev LEFT JOIN ins ON ins.dedup_key = ev.dedup_key
                     LEFT JOIN owners o ON o.media_id = ev.media_id
             ORDER BY ev.ord"
            )
        });
        let rows: Vec<OwnerRow> = sqlx::query_as(SQL.as_str())
            .bind(verification)
            .bind(event_type)
            .bind(media_id)
            .bind(signature_timestamp)
            .bind(dedup_key)
            .bind(headers)
            .bind(body)
            .bind(event_time)
            .bind(processing)
            .fetch_all(&mut **tx)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let (id, owner) = owner_of(row);
                Stored { id, owner }
            })
            .collect())
    }

    /// Writes the drafts (state, media columns) and their history rows in order, and marks the
    /// `completed_by` events (upload events that completed their job) applied, in one statement.
    pub(super) async fn write_drafts_in(
        tx: &mut PgTx<'_, Postgres>,
        drafts: &[JobDraft],
        completed_by: &[(i64, &str)],
    ) -> Result<DraftsWritten, sqlx::Error> {
        let drafts: Vec<&JobDraft> = drafts.iter().filter(|d| d.writes()).collect();
        if drafts.is_empty() && completed_by.is_empty() {
            return Ok(DraftsWritten::default());
        }
        let (applied_ids, applied_jobs): (Vec<i64>, Vec<&str>) =
            completed_by.iter().copied().unzip();
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH {},
                 a AS (
                     UPDATE vod_events SET applied = true, job_id = u.job_id
                     FROM unnest($14::int8[], $15::text[]) AS u(id, job_id)
                     WHERE vod_events.id = u.id
                 )
                 SELECT max(at) FROM h",
                job_and_history("")
            )
        });
        let (at,): (Option<DateTime<Utc>>,) = DraftArrays::of(&drafts)
            .bind(sqlx::query_as(SQL.as_str()))
            .bind(applied_ids)
            .bind(applied_jobs)
            .fetch_one(&mut **tx)
            .await?;
        Ok(DraftsWritten::of(&drafts, at))
    }

    /// The path of a callback that arrives alone, in autocommit: stores it when no job owns its
    /// media, else returns the job as read, without a lock, for
    /// [`JobStore::write_draft_if_unchanged`]. One round trip.
    pub(super) async fn store_unowned_or_read_owner(
        &self,
        raw: &RawCallback<'_>,
    ) -> Result<Unowned, sqlx::Error> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH owner AS (
                     SELECT job_id, kind, state, media_id, media_status, media_detail,
                            {ROW_BY_ROW} AS row_by_row
                     FROM ingest_jobs WHERE media_id = $3
                 ), ins AS (
                     INSERT INTO vod_events (verification, event_type, media_id, signature_timestamp,
                                             dedup_key, headers, body, event_time)
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8
                     WHERE NOT EXISTS (SELECT 1 FROM owner)
                     ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
                     RETURNING id
                 )
                 SELECT (SELECT id FROM ins), o.job_id, o.kind, o.state, o.media_id,
                        o.media_status, o.media_detail, o.row_by_row
                 FROM (SELECT 1) AS one LEFT JOIN owner o ON true"
            )
        });
        let row: OwnerRow = raw
            .bind(sqlx::query_as(SQL.as_str()))
            .fetch_one(self.pool())
            .await?;
        Ok(match owner_of(row) {
            (_, Some(owner)) => Unowned::Owner(owner),
            (Some(_), None) => Unowned::Stored,
            (None, None) => Unowned::Duplicate,
        })
    }

    /// Stores `raw` (applied to the job when `applied`) and writes `draft`, made from `owner` as
    /// read by [`JobStore::store_unowned_or_read_owner`], in one autocommit statement, only if
    /// the job's state and media columns are still exactly as read (the statement locks the row
    /// and compares) and the callback is not stored already. Two round trips in all for a lone
    /// callback, instead of a transaction's four.
    pub(super) async fn write_draft_if_unchanged(
        &self,
        owner: &LockedJob,
        draft: &JobDraft,
        raw: &RawCallback<'_>,
        applied: bool,
    ) -> Result<Optimistic, sqlx::Error> {
        let drafts: Vec<&JobDraft> = [draft].into_iter().filter(|d| d.writes()).collect();
        // `cur` locks the row only if it is as read (after a concurrent commit, the recheck
        // sees the new version and drops it); everything else hangs on `cur` and `ins`, so a
        // changed row or a duplicate writes nothing. `j` and `h` write nothing for an empty
        // draft: their arrays are empty.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH cur AS (
                     SELECT job_id FROM ingest_jobs
                     WHERE media_id = $14 AND job_id = $15 AND state = $16
                       AND media_status IS NOT DISTINCT FROM $17 AND media_detail = $18
                     FOR UPDATE
                 ), ins AS (
                     INSERT INTO vod_events (verification, event_type, media_id, signature_timestamp,
                                             dedup_key, headers, body, event_time, applied, job_id)
                     SELECT $19, $20, $21, $22, $23, $24, $25, $26, $27,
                            CASE WHEN $27 THEN job_id END
                     FROM cur
                     ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
                     RETURNING id
                 ), {}
                 SELECT EXISTS (SELECT 1 FROM cur), EXISTS (SELECT 1 FROM ins),
                        (SELECT max(at) FROM h)",
                job_and_history("AND EXISTS (SELECT 1 FROM ins)")
            )
        });
        let (unchanged, stored, at): (bool, bool, Option<DateTime<Utc>>) = DraftArrays::of(&drafts)
            .bind(sqlx::query_as(SQL.as_str()))
            .bind(&owner.media_id)
            .bind(&owner.job_id)
            .bind(owner.state)
            .bind(&owner.media_status)
            .bind(&owner.media_detail)
            .bind(raw.verification)
            .bind(raw.event_type)
            .bind(raw.media_id)
            .bind(raw.signature_timestamp)
            .bind(raw.dedup_key)
            .bind(raw.headers)
            .bind(raw.body)
            .bind(raw.event_time)
            .bind(applied)
            .fetch_one(self.pool())
            .await?;
        Ok(match (unchanged, stored) {
            (false, _) => Optimistic::Changed,
            (true, false) => Optimistic::Duplicate,
            (true, true) => Optimistic::Written(DraftsWritten::of(&drafts, at)),
        })
    }
}

/// An event's row id (when the statement stored it) and its media's owner's columns (NULL for
/// media no job owns).
type OwnerRow = (
    Option<i64>,
    Option<String>,
    Option<JobKind>,
    Option<JobState>,
    Option<String>,
    Option<String>,
    Option<Value>,
    Option<bool>,
);

fn owner_of(row: OwnerRow) -> (Option<i64>, Option<LockedJob>) {
    let (id, job_id, kind, state, media_id, media_status, detail, row_by_row) = row;
    let owner = match (job_id, kind, state, media_id, detail, row_by_row) {
        (
            Some(job_id),
            Some(kind),
            Some(state),
            Some(media_id),
            Some(media_detail),
            Some(row_by_row),
        ) => Some(LockedJob {
            job_id,
            kind,
            state,
            media_id,
            media_status,
            media_detail,
            row_by_row,
        }),
        _ => None,
    };
    (id, owner)
}

/// What [`JobStore::store_unowned_or_read_owner`] found.
#[derive(Debug)]
pub(super) enum Unowned {
    /// No job owns the media: the callback is stored.
    Stored,
    /// No job owns the media and the callback was stored before.
    Duplicate,
    /// The job that owns the media, as read (the callback is not stored yet).
    Owner(LockedJob),
}

/// What [`JobStore::write_draft_if_unchanged`] did.
#[derive(Debug)]
pub(super) enum Optimistic {
    Written(DraftsWritten),
    /// The callback was stored before; nothing was written.
    Duplicate,
    /// The job changed since it was read; nothing was written.
    Changed,
}

impl DraftsWritten {
    fn of(drafts: &[&JobDraft], at: Option<DateTime<Utc>>) -> Self {
        // Every row of one transaction has the same `at` (its start).
        let at = at.unwrap_or_else(Utc::now);
        let mut written = DraftsWritten::default();
        for d in drafts {
            written.history_rows += d.history.len();
            if d.completes {
                written.transitions.push(Transition {
                    job_id: d.job_id.clone(),
                    kind: d.kind,
                    state: JobState::Completed,
                    previous_state: Some(JobState::Uploaded),
                    media_id: Some(d.media_id.clone()),
                    error_code: None,
                    error_message: None,
                    at,
                });
            }
        }
        written
    }
}

/// The drafts' job updates (`j`) and history rows (`h`, in order), as CTEs over the arrays of
/// [`DraftArrays`] bound as `$1..$13`; both write only where `guard` (a condition starting with
/// `AND`, or nothing) holds. Built once per statement (`LazyLock`), not per callback.
fn job_and_history(guard: &str) -> String {
    format!(
        "j AS (
                 UPDATE ingest_jobs AS t SET
                     state = CASE WHEN u.completes THEN 'completed' ELSE t.state END,
                     updated_at = CASE WHEN u.completes THEN now() ELSE t.updated_at END,
                     lease_owner = CASE WHEN u.completes THEN NULL ELSE t.lease_owner END,
                     lease_expires_at = CASE WHEN u.completes THEN NULL ELSE t.lease_expires_at END,
                     completed_at = CASE WHEN u.completes THEN now() ELSE t.completed_at END,
                     bytes_uploaded = CASE WHEN u.completes THEN COALESCE(t.bytes_total, t.bytes_uploaded)
                                      ELSE t.bytes_uploaded END,
                     media_status = CASE WHEN u.media THEN u.status ELSE t.media_status END,
                     media_detail = CASE WHEN u.media THEN u.detail ELSE t.media_detail END,
                     media_updated_at = CASE WHEN u.media THEN now() ELSE t.media_updated_at END,
                     media_checks = CASE WHEN u.media THEN 0 ELSE t.media_checks END
                 FROM unnest($1::text[], $2::bool[], $3::bool[], $4::text[], $5::jsonb[])
                     AS u(media_id, completes, media, status, detail)
                 -- By media: the planner may pick the console's trigram index for an
                 -- equality on job_id, which costs milliseconds a row.
                 WHERE t.media_id = u.media_id {guard}
                 RETURNING t.job_id
             ), h AS (
                 INSERT INTO ingest_job_events
                     (job_id, from_state, to_state, media_id, error_code, error_message, detail, milestone)
                 SELECT job_id, from_state, to_state, media_id, error_code, error_message, detail,
                        milestone
                 FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                             $11::text[], $12::jsonb[], $13::text[])
                     WITH ORDINALITY AS h(job_id, from_state, to_state, media_id, error_code,
                                          error_message, detail, milestone, ord)
                 WHERE true {guard}
                 ORDER BY ord
                 RETURNING at
             )"
    )
}

/// [`JobDraft`]s as the arrays [`job_and_history`] reads.
struct DraftArrays<'a> {
    media_id: Vec<&'a str>,
    completes: Vec<bool>,
    media: Vec<bool>,
    status: Vec<Option<&'a str>>,
    detail: Vec<Value>,
    h_job: Vec<&'a str>,
    h_from: Vec<&'a str>,
    h_to: Vec<&'a str>,
    h_media: Vec<&'a str>,
    h_code: Vec<Option<&'a str>>,
    h_message: Vec<Option<&'a str>>,
    h_detail: Vec<&'a Value>,
    h_milestone: Vec<Option<&'static str>>,
}

impl<'a> DraftArrays<'a> {
    fn of(drafts: &[&'a JobDraft]) -> Self {
        let mut a = DraftArrays {
            media_id: Vec::new(),
            completes: Vec::new(),
            media: Vec::new(),
            status: Vec::new(),
            detail: Vec::new(),
            h_job: Vec::new(),
            h_from: Vec::new(),
            h_to: Vec::new(),
            h_media: Vec::new(),
            h_code: Vec::new(),
            h_message: Vec::new(),
            h_detail: Vec::new(),
            h_milestone: Vec::new(),
        };
        for d in drafts {
            a.media_id.push(d.media_id.as_str());
            a.completes.push(d.completes);
            a.media.push(d.media_changed);
            a.status.push(d.media_status.as_deref());
            a.detail.push(d.detail.to_json());
            for h in &d.history {
                a.h_job.push(d.job_id.as_str());
                a.h_from.push(h.from_state.as_str());
                a.h_to.push(h.to_state.as_str());
                a.h_media.push(d.media_id.as_str());
                a.h_code.push(h.error_code.as_deref());
                a.h_message.push(h.error_message.as_deref());
                a.h_detail.push(&h.detail);
                a.h_milestone.push(h.milestone);
            }
        }
        a
    }

    /// Binds the arrays as `$1..$13`.
    fn bind<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.media_id)
            .bind(self.completes)
            .bind(self.media)
            .bind(self.status)
            .bind(self.detail)
            .bind(self.h_job)
            .bind(self.h_from)
            .bind(self.h_to)
            .bind(self.h_media)
            .bind(self.h_code)
            .bind(self.h_message)
            .bind(self.h_detail)
            .bind(self.h_milestone)
    }
}

impl JobStore {
    /// Deletes up to `limit` stored callbacks received more than `retention` ago, oldest
    /// first; returns how many. Kept whatever their age: an upload event not applied yet whose
    /// media belongs to a job still on its way (the worker's `mark_uploaded` applies it when
    /// the job reaches `uploaded`), and one waiting for VOD to confirm it.
    pub async fn prune_events(
        &self,
        retention: std::time::Duration,
        limit: i64,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM vod_events WHERE id IN (
                 SELECT e.id FROM vod_events e
                 WHERE e.received_at < now() - make_interval(secs => $1)
                   AND (e.applied OR e.media_id IS NULL OR NOT EXISTS (
                        SELECT 1 FROM ingest_jobs j WHERE j.media_id = e.media_id
                          AND j.state IN ('queued', 'uploading', 'retrying', 'uploaded',
                                          'awaiting_upload')))
                   AND e.confirm_requested_at IS NULL
                 ORDER BY e.received_at LIMIT $2)",
        )
        .bind(retention.as_secs_f64())
        .bind(limit)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

/// A stored callback waiting for VOD to confirm its media has the file
/// ([`JobStore::request_confirmation_in`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ToConfirm {
    pub id: i64,
    pub event_type: String,
    pub media_id: String,
    /// The kind of the job that owns the media, if one does.
    pub job_kind: Option<String>,
    pub confirm_requested_at: DateTime<Utc>,
    /// As received, for the confirmer to apply a processing event's news with the completion.
    pub body: Vec<u8>,
}

impl JobStore {
    /// Marks a stored upload event (or a processing event that would complete a job) as
    /// waiting for VOD's confirmation, in the batch's transaction.
    pub async fn request_confirmation_in(
        tx: &mut PgTx<'_, Postgres>,
        id: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE vod_events SET confirm_requested_at = now(), confirm_checked_at = NULL,
                 confirm_outcome = NULL
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Events waiting for confirmation not asked about in the last `recheck`, oldest first.
    pub async fn events_to_confirm(
        &self,
        recheck: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<ToConfirm>, sqlx::Error> {
        sqlx::query_as(
            "SELECT e.id, e.event_type, e.media_id, j.kind AS job_kind, e.confirm_requested_at,
                    e.body
             FROM vod_events e LEFT JOIN ingest_jobs j ON j.media_id = e.media_id
             WHERE e.confirm_requested_at IS NOT NULL
               AND e.event_type IS NOT NULL AND e.media_id IS NOT NULL
               AND (e.confirm_checked_at IS NULL
                    OR e.confirm_checked_at < now() - make_interval(secs => $1))
             ORDER BY e.id LIMIT $2",
        )
        .bind(recheck.as_secs_f64())
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// VOD confirmed that the event's media has the file: completes the job that owns it (with
    /// VOD's size, so the key's limit is checked against the truth), or records the client's
    /// STS upload when no job owns it and `record_sts` holds, then merges `update` (a
    /// processing event's news, held back until now); the event is applied when it moved a
    /// job. One transaction. Returns the transition and whether milestones were recorded.
    pub async fn confirm_upload(
        &self,
        event: &ToConfirm,
        kind: JobKind,
        size: Option<u64>,
        record_sts: bool,
        update: Option<&MediaUpdate>,
    ) -> Result<(Option<Transition>, bool), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let confirmation = super::store::Confirmation {
            via: &event.event_type,
            size,
        };
        let mut transition =
            Self::complete_by_media_in(&mut tx, &event.media_id, confirmation).await?;
        if transition.is_none() && record_sts && event.job_kind.is_none() {
            transition =
                Self::record_sts_upload_in(&mut tx, kind, &event.media_id, size, &event.event_type)
                    .await?;
        }
        let mut milestones = false;
        if let Some(update) = update {
            if let Some(applied) =
                Self::apply_media_in(&mut tx, &event.media_id, update, None).await?
            {
                milestones = !applied.milestones.is_empty();
            }
        }
        sqlx::query(
            "UPDATE vod_events SET confirm_requested_at = NULL, confirm_checked_at = now(),
                 confirm_outcome = 'confirmed', applied = applied OR $2,
                 job_id = COALESCE($3, job_id)
             WHERE id = $1",
        )
        .bind(event.id)
        .bind(transition.is_some() || milestones)
        .bind(transition.as_ref().map(|t| t.job_id.as_str()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((transition, milestones))
    }

    /// VOD did not confirm the event's media (`outcome`: `not_found`, or its status): the
    /// event changes nothing. With `give_up` it is not asked about again.
    pub async fn refuse_confirmation(
        &self,
        id: i64,
        outcome: &str,
        give_up: bool,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE vod_events SET confirm_checked_at = now(), confirm_outcome = $2,
                 confirm_requested_at = CASE WHEN $3 THEN NULL ELSE confirm_requested_at END
             WHERE id = $1",
        )
        .bind(id)
        .bind(outcome)
        .bind(give_up)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
