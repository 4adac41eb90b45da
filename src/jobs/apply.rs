//! The one entry point for VOD's callbacks: [`JobStore::apply_callbacks`] stores a batch of
//! authenticated callbacks and applies them to the jobs that own their media, in one
//! transaction; [`CallbackIntake`] is the group commit in front of it that the webhook hands
//! each callback to. Batches grow with the load by themselves (no timer), so a commit (a WAL
//! flush) serves many callbacks; a callback that arrives alone takes two autocommit statements
//! instead. The webhook answers VOD only after the batch committed, so a 200 still means
//! "stored" (VOD does not send an event again after a 200).
//!
//! Inside, three paths, chosen per callback: a lone callback's optimistic pair of statements
//! ([`JobStore::store_unowned_or_read_owner`], [`JobStore::write_draft_if_unchanged`]); the
//! batch's drafts ([`JobDraft`], written by [`JobStore::write_drafts_in`]); and, for jobs a
//! draft does not handle (client uploads, size-limited confirmations, STS recordings), the row
//! by row path that leaves the upload for the confirmer to check with VOD.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::callbacks::{JobDraft, Observation, Optimistic, ToStore, Unowned};
use super::event::ParsedEvent;
use super::group::GroupCommit;
use super::media::RawCallback;
use super::model::{JobKind, JobState};
use super::outbox::OutboxWaker;
use super::store::{JobStore, Transition};

/// Callbacks one transaction takes at most.
const MAX_BATCH: usize = 128;

/// Batch transactions in flight at once: one fills while another commits. Jobs are locked in
/// `job_id` order, so concurrent batches do not deadlock on job rows.
const BATCH_TASKS: usize = 2;

/// An authenticated, parsed callback, as the store keeps it. Only the webhook makes these,
/// after the signature checked out: only an authenticated event may claim a dedup key, so a
/// forged copy cannot shadow it.
pub struct VerifiedCallback {
    verification: &'static str,
    dedup_key: String,
    signature_timestamp: Option<i64>,
    headers: serde_json::Value,
    body: Bytes,
    event: ParsedEvent,
    /// The upload may be recorded as a client's STS upload when no job owns the media.
    may_record_sts: bool,
}

impl VerifiedCallback {
    /// `verification` names how it was authenticated (stored with it); `headers` are as they
    /// may be stored (credentials redacted); `record_sts_uploads` whether an upload no job
    /// knows of may be recorded as a client's STS upload.
    pub fn new(
        verification: &'static str,
        signature_timestamp: Option<i64>,
        headers: serde_json::Value,
        body: Bytes,
        event: ParsedEvent,
        record_sts_uploads: bool,
    ) -> Self {
        let may_record_sts = record_sts_uploads
            && event.succeeded
            && JobKind::completed_by(&event.event_type).is_some();
        Self {
            verification,
            dedup_key: hex::encode(Sha256::digest(&body)),
            signature_timestamp,
            headers,
            body,
            event,
            may_record_sts,
        }
    }

    fn observation(&self) -> Observation<'_> {
        Observation {
            event_type: &self.event.event_type,
            upload_kind: JobKind::completed_by(&self.event.event_type),
            succeeded: self.event.succeeded,
            size: self.event.size,
            update: self.event.update.as_ref(),
        }
    }

    fn raw(&self) -> RawCallback<'_> {
        RawCallback {
            verification: self.verification,
            event_type: Some(&self.event.event_type),
            media_id: self.event.media_id.as_deref(),
            signature_timestamp: self.signature_timestamp,
            dedup_key: Some(&self.dedup_key),
            headers: &self.headers,
            body: &self.body,
            event_time: self.event.event_time,
        }
    }
}

/// What became of one callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// Stored and applied to the job that owns its media.
    Applied,
    /// Stored; nothing to apply (yet): no job owns the media, or VOD must confirm it first.
    Stored,
    /// An earlier delivery of the same event is stored.
    Duplicate,
}

/// What one call of [`JobStore::apply_callbacks`] did.
pub struct AppliedCallbacks {
    /// One per callback, in order. A failed batch is retried callback by callback, so one
    /// callback's failure does not fail the others.
    pub outcomes: Vec<Result<CallbackOutcome, Arc<sqlx::Error>>>,
    /// The jobs' own state changes, in order.
    pub moved: Vec<Transition>,
    /// History rows were written: the outbox has news.
    pub outbox_has_news: bool,
    /// An upload waits for the confirmer to check with VOD.
    pub to_confirm: bool,
}

impl AppliedCallbacks {
    fn absorb(&mut self, other: Written) {
        self.moved.extend(other.moved);
        self.outbox_has_news |= other.outbox_has_news;
        self.to_confirm |= other.to_confirm;
    }
}

/// What one transaction (or optimistic pair) wrote besides the outcomes.
#[derive(Default)]
struct Written {
    moved: Vec<Transition>,
    outbox_has_news: bool,
    to_confirm: bool,
}

type Answer = Result<CallbackOutcome, Arc<sqlx::Error>>;

/// The webhook's side: group commit in front of [`JobStore::apply_callbacks`], which also rings
/// the outbox and the confirmer after each commit. Cheap to clone.
#[derive(Clone)]
pub struct CallbackIntake {
    group: GroupCommit<VerifiedCallback, Answer>,
}

impl CallbackIntake {
    /// Starts the batch tasks; they end when the last clone is dropped. `confirm` wakes the
    /// confirmer ([`crate::reconciler::run_confirmer`]) when a batch left an upload for VOD to
    /// confirm.
    pub fn start(store: JobStore, outbox: OutboxWaker, confirm: Arc<Notify>) -> Self {
        let group = GroupCommit::start(
            BATCH_TASKS,
            MAX_BATCH,
            "vod_ingest_callback_batch_size",
            move |batch: Vec<VerifiedCallback>| {
                let (store, outbox, confirm) = (store.clone(), outbox.clone(), confirm.clone());
                async move {
                    let applied = store.apply_callbacks(&batch).await;
                    for t in &applied.moved {
                        tracing::info!(job_id = %t.job_id, media_id = ?t.media_id, state = %t.state, "job moved on by callback");
                    }
                    if applied.outbox_has_news {
                        outbox.wake();
                    }
                    if applied.to_confirm {
                        confirm.notify_one();
                    }
                    applied.outcomes
                }
            },
        );
        Self { group }
    }

    /// Stores and applies `callback` with whatever else is waiting; returns once committed.
    pub async fn submit(&self, callback: VerifiedCallback) -> Answer {
        self.group
            .submit(callback)
            .await
            .unwrap_or_else(|_| Err(Arc::new(sqlx::Error::PoolClosed)))
    }
}

impl JobStore {
    /// Stores `batch` and applies each callback to the job that owns its media, in arrival
    /// order: one transaction for the batch (or, for a lone callback, two autocommit
    /// statements). Never fails as a whole: a batch that fails (or deadlocks with another
    /// transaction) goes again callback by callback, and each answer says how its own went.
    pub async fn apply_callbacks(&self, batch: &[VerifiedCallback]) -> AppliedCallbacks {
        let mut applied = AppliedCallbacks {
            outcomes: Vec::with_capacity(batch.len()),
            moved: Vec::new(),
            outbox_has_news: false,
            to_confirm: false,
        };
        let result = match batch {
            [one] => match self.store_alone(one).await {
                Ok(Some((outcome, written))) => Ok((vec![outcome], written)),
                Ok(None) => self.store_batch(batch).await,
                Err(e) => Err(e),
            },
            _ => self.store_batch(batch).await,
        };
        match result {
            Ok((outcomes, written)) => {
                applied.outcomes = outcomes.into_iter().map(Ok).collect();
                applied.absorb(written);
            }
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, callbacks = batch.len(), "a batch of callbacks failed; storing them one by one");
                for one in batch {
                    match self.store_batch(std::slice::from_ref(one)).await {
                        Ok((mut outcomes, written)) => {
                            applied.outcomes.push(Ok(outcomes.remove(0)));
                            applied.absorb(written);
                        }
                        Err(e) => applied.outcomes.push(Err(Arc::new(e))),
                    }
                }
            }
            Err(e) => applied.outcomes.push(Err(Arc::new(e))),
        }
        applied
    }

    /// A callback that arrives alone (an idle or lightly loaded service) takes two autocommit
    /// statements instead of a transaction's four round trips: one stores it when no job owns
    /// its media and otherwise reads the job, one stores and applies it if the job is still as
    /// read. `None` when it must take the transaction after all (the job changed in between, a
    /// client upload, an STS upload to record).
    async fn store_alone(
        &self,
        p: &VerifiedCallback,
    ) -> Result<Option<(CallbackOutcome, Written)>, sqlx::Error> {
        if p.may_record_sts {
            return Ok(None);
        }
        let raw = p.raw();
        let owner = match self.store_unowned_or_read_owner(&raw).await? {
            Unowned::Stored => return Ok(Some((CallbackOutcome::Stored, Written::default()))),
            Unowned::Duplicate => {
                return Ok(Some((CallbackOutcome::Duplicate, Written::default())))
            }
            Unowned::Owner(owner) => owner,
        };
        let mut draft = JobDraft::new(&owner);
        if draft.needs_row_by_row() {
            return Ok(None);
        }
        let applied = draft.observe(p.observation());
        Ok(
            match self
                .write_draft_if_unchanged(&owner, &draft, &raw, applied)
                .await?
            {
                Optimistic::Changed => None,
                Optimistic::Duplicate => Some((CallbackOutcome::Duplicate, Written::default())),
                Optimistic::Written(written) => {
                    let outcome = if applied {
                        CallbackOutcome::Applied
                    } else {
                        CallbackOutcome::Stored
                    };
                    let written = Written {
                        outbox_has_news: written.history_rows > 0,
                        moved: written.transitions,
                        to_confirm: false,
                    };
                    Some((outcome, written))
                }
            },
        )
    }

    /// One transaction for the batch; one outcome per callback, in order.
    async fn store_batch(
        &self,
        batch: &[VerifiedCallback],
    ) -> Result<(Vec<CallbackOutcome>, Written), sqlx::Error> {
        let mut outcomes: Vec<Option<CallbackOutcome>> = (0..batch.len()).map(|_| None).collect();
        // A second delivery of the same event in one batch is a duplicate of the first.
        let mut seen = HashSet::new();
        let mut distinct = Vec::with_capacity(batch.len());
        for (i, p) in batch.iter().enumerate() {
            if seen.insert(p.dedup_key.as_str()) {
                distinct.push(i);
            } else {
                outcomes[i] = Some(CallbackOutcome::Duplicate);
            }
        }
        let to_store: Vec<ToStore<'_>> = distinct
            .iter()
            .map(|&i| ToStore {
                raw: batch[i].raw(),
                processing: is_processing(&batch[i].event),
            })
            .collect();
        let mut tx = self.pool().begin().await?;
        let stored = JobStore::store_callbacks_in(&mut tx, &to_store).await?;
        let mut drafts: Vec<JobDraft> = Vec::new();
        let mut draft_of: HashMap<String, usize> = HashMap::new();
        // Upload events that completed their job: (event id, draft).
        let mut completed_by = Vec::new();
        let mut row_by_row = Vec::new();
        for (&i, s) in distinct.iter().zip(stored) {
            let p = &batch[i];
            let Some(id) = s.id else {
                outcomes[i] = Some(CallbackOutcome::Duplicate);
                continue;
            };
            let Some(owner) = s.owner else {
                if p.may_record_sts {
                    row_by_row.push((i, id, None));
                } else {
                    outcomes[i] = Some(CallbackOutcome::Stored);
                }
                continue;
            };
            let d = *draft_of.entry(owner.job_id.clone()).or_insert_with(|| {
                drafts.push(JobDraft::new(&owner));
                drafts.len() - 1
            });
            let draft = &mut drafts[d];
            if draft.needs_row_by_row() {
                row_by_row.push((i, id, Some(draft.state())));
                continue;
            }
            let observation = p.observation();
            let applied = draft.observe(observation);
            // A processing event was stored as applied already.
            debug_assert!(applied || !is_processing(&p.event));
            if applied && observation.upload_kind.is_some() {
                completed_by.push((id, d));
            }
            outcomes[i] = Some(if applied {
                CallbackOutcome::Applied
            } else {
                CallbackOutcome::Stored
            });
        }
        let completed_by: Vec<(i64, &str)> = completed_by
            .iter()
            .map(|&(id, d)| (id, drafts[d].job_id()))
            .collect();
        let drafts_written = JobStore::write_drafts_in(&mut tx, &drafts, &completed_by).await?;
        let mut written = Written {
            outbox_has_news: drafts_written.history_rows > 0,
            moved: drafts_written.transitions,
            to_confirm: false,
        };
        for (i, id, state) in row_by_row {
            let (outcome, milestones, confirming) =
                apply_row_by_row(&mut tx, id, &batch[i].event, state).await?;
            outcomes[i] = Some(outcome);
            written.outbox_has_news |= milestones;
            written.to_confirm |= confirming;
        }
        tx.commit().await?;
        Ok((
            outcomes
                .into_iter()
                .map(|o| o.expect("every callback has an outcome"))
                .collect(),
            written,
        ))
    }
}

/// An event that is applied to the job owning its media whatever the job's state: one that
/// says something about the media and is not an upload event.
fn is_processing(event: &ParsedEvent) -> bool {
    event.update.is_some() && JobKind::completed_by(&event.event_type).is_none()
}

/// Applies one stored event to a client upload (`awaiting_upload`, or `uploaded` waiting for
/// its size; `state` is the job's, locked by the batch), or keeps it for an STS upload no job
/// knows of (`state` `None`), inside the batch's transaction. No worker checked those bytes and
/// VOD's signature does not cover the body, so an event that would complete the upload is left
/// for the confirmer to check with VOD first (answered 200 at once all the same); until then a
/// processing event is not applied to a job still `awaiting_upload` either (the confirmer
/// applies it with the completion). Returns the outcome, whether milestones were recorded, and
/// whether the event waits for VOD.
async fn apply_row_by_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: i64,
    event: &ParsedEvent,
    state: Option<JobState>,
) -> Result<(CallbackOutcome, bool, bool), sqlx::Error> {
    let Some(media_id) = &event.media_id else {
        return Ok((CallbackOutcome::Stored, false, false));
    };
    if JobKind::completed_by(&event.event_type).is_some() {
        if event.succeeded {
            JobStore::request_confirmation_in(tx, id).await?;
        }
        return Ok((CallbackOutcome::Stored, false, event.succeeded));
    }
    let Some(update) = &event.update else {
        return Ok((CallbackOutcome::Stored, false, false));
    };
    let proves_upload = update.uploaded || update.transcoding || !update.steps.is_empty();
    if state == Some(JobState::AwaitingUpload) {
        if proves_upload {
            JobStore::request_confirmation_in(tx, id).await?;
        }
        return Ok((CallbackOutcome::Stored, false, proves_upload));
    }
    // A client upload in `uploaded`: VOD confirmed the file; its size decides the outcome, so
    // the confirmer reads it from VOD.
    let Some(applied) = JobStore::apply_media_in(tx, media_id, update, None).await? else {
        return Ok((CallbackOutcome::Stored, false, false));
    };
    mark_applied(tx, id, &applied.job_id).await?;
    if proves_upload {
        JobStore::request_confirmation_in(tx, id).await?;
    }
    Ok((
        CallbackOutcome::Applied,
        !applied.milestones.is_empty(),
        proves_upload,
    ))
}

async fn mark_applied(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: i64,
    job_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE vod_events SET applied = true, job_id = $2 WHERE id = $1")
        .bind(id)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
