//! Group commit for authenticated callbacks: handlers hand their event to a few batch tasks,
//! which take whatever has queued up meanwhile and store and apply it in one transaction
//! ([`crate::jobs::JobStore::store_callbacks_in`]). Each handler answers VOD only after its
//! batch committed, so a 200 still means "stored" (VOD does not send an event again after a
//! 200). Batches grow with the load by themselves (no timer), so a commit (a WAL flush) serves
//! many callbacks; a callback that arrives alone takes two autocommit statements instead.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use super::{completed_kind, Outcome, ParsedEvent};
use crate::jobs::JobState;
use crate::jobs::{
    JobDraft, JobStore, Observation, Optimistic, RawCallback, ToStore, Transition, Unowned,
};
use crate::queue::TransitionSender;

/// Callbacks one transaction takes at most.
const MAX_BATCH: usize = 128;

/// Batch transactions in flight at once: one fills while another commits. Jobs are locked in
/// `job_id` order, so concurrent batches do not deadlock on job rows.
const BATCH_TASKS: usize = 2;

/// An authenticated, parsed callback, as the batch stores it.
pub(super) struct Pending {
    pub verification: &'static str,
    pub dedup_key: String,
    pub signature_timestamp: Option<i64>,
    pub headers: serde_json::Value,
    pub body: Bytes,
    pub event: ParsedEvent,
    /// The upload may be recorded as a client's STS upload when no job owns the media.
    pub may_record_sts: bool,
}

impl Pending {
    fn observation(&self) -> Observation<'_> {
        Observation {
            event_type: &self.event.event_type,
            upload_kind: completed_kind(&self.event.event_type),
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

type Reply = oneshot::Sender<Result<Outcome, Arc<sqlx::Error>>>;

/// The handlers' side: cheap to clone.
#[derive(Clone)]
pub(super) struct Batcher {
    queue: mpsc::Sender<(Pending, Reply)>,
}

impl Batcher {
    /// Starts the batch tasks; they end when the last `Batcher` is dropped.
    /// `confirm` wakes the confirmer ([`super::reconciler::run_confirmer`]) when a batch left
    /// an upload for VOD to confirm.
    pub fn start(store: JobStore, transitions: TransitionSender, confirm: Arc<Notify>) -> Self {
        let (queue, receiver) = mpsc::channel(4 * MAX_BATCH);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..BATCH_TASKS {
            tokio::spawn(run(
                store.clone(),
                transitions.clone(),
                receiver.clone(),
                confirm.clone(),
            ));
        }
        Self { queue }
    }

    /// Stores and applies `pending` with whatever else is waiting; returns once committed.
    pub async fn submit(&self, pending: Pending) -> Result<Outcome, Arc<sqlx::Error>> {
        let (reply, answer) = oneshot::channel();
        let closed = || Arc::new(sqlx::Error::PoolClosed);
        self.queue
            .send((pending, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn run(
    store: JobStore,
    transitions: TransitionSender,
    receiver: Arc<Mutex<mpsc::Receiver<(Pending, Reply)>>>,
    confirm: Arc<Notify>,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        let (pending, replies): (Vec<Pending>, Vec<Reply>) = batch.into_iter().unzip();
        metrics::histogram!("vod_ingest_callback_batch_size").record(pending.len() as f64);
        let result = match pending.as_slice() {
            [one] => match store_alone(&store, &transitions, one).await {
                Ok(Some(outcome)) => Ok(vec![outcome]),
                Ok(None) => store_batch(&store, &transitions, &confirm, &pending).await,
                Err(e) => Err(e),
            },
            _ => store_batch(&store, &transitions, &confirm, &pending).await,
        };
        match result {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            // One callback's failure (or a deadlock with another transaction) must not fail
            // the others: each goes again alone.
            Err(e) if pending.len() > 1 => {
                tracing::warn!(error = %e, callbacks = pending.len(), "a batch of callbacks failed; storing them one by one");
                for (one, reply) in pending.iter().zip(replies) {
                    let outcome =
                        store_batch(&store, &transitions, &confirm, std::slice::from_ref(one))
                            .await
                            .map(|mut o| o.remove(0))
                            .map_err(Arc::new);
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Logs the jobs a committed batch moved on and wakes the outbox publisher.
fn report(transitions: &TransitionSender, mut moved: Vec<Transition>, wake: bool) {
    for t in &moved {
        tracing::info!(job_id = %t.job_id, media_id = ?t.media_id, state = %t.state, "job moved on by callback");
    }
    if let Some(t) = moved.pop() {
        // One wake-up is enough: the outbox publisher reads what to publish from the table.
        let _ = transitions.send(t);
    } else if wake {
        let _ = transitions.send(Transition::wake_up());
    }
}

/// A callback that arrives alone (an idle or lightly loaded service) takes two autocommit
/// statements instead of a transaction's four round trips: one stores it when no job owns its
/// media and otherwise reads the job, one stores and applies it if the job is still as read.
/// `None` when it must take the transaction after all (the job changed in between, a client
/// upload, an STS upload to record).
async fn store_alone(
    store: &JobStore,
    transitions: &TransitionSender,
    p: &Pending,
) -> Result<Option<Outcome>, sqlx::Error> {
    if p.may_record_sts {
        return Ok(None);
    }
    let raw = p.raw();
    let owner = match store.store_unowned_or_read_owner(&raw).await? {
        Unowned::Stored => return Ok(Some(Outcome::Stored)),
        Unowned::Duplicate => return Ok(Some(Outcome::Duplicate)),
        Unowned::Owner(owner) => owner,
    };
    let mut draft = JobDraft::new(&owner);
    if draft.needs_row_by_row() {
        return Ok(None);
    }
    let applied = draft.observe(p.observation());
    Ok(
        match store
            .write_draft_if_unchanged(&owner, &draft, &raw, applied)
            .await?
        {
            Optimistic::Changed => None,
            Optimistic::Duplicate => Some(Outcome::Duplicate),
            Optimistic::Written(written) => {
                let wake = written.history_rows > 0;
                report(transitions, written.transitions, wake);
                Some(if applied {
                    Outcome::Applied
                } else {
                    Outcome::Stored
                })
            }
        },
    )
}

/// One transaction for the batch; one outcome per callback, in order.
async fn store_batch(
    store: &JobStore,
    transitions: &TransitionSender,
    confirm: &Notify,
    batch: &[Pending],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut outcomes: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
    // A second delivery of the same event in one batch is a duplicate of the first.
    let mut seen = HashSet::new();
    let mut distinct = Vec::with_capacity(batch.len());
    for (i, p) in batch.iter().enumerate() {
        if seen.insert(p.dedup_key.as_str()) {
            distinct.push(i);
        } else {
            outcomes[i] = Some(Outcome::Duplicate);
        }
    }
    let to_store: Vec<ToStore<'_>> = distinct
        .iter()
        .map(|&i| ToStore {
            raw: batch[i].raw(),
            processing: is_processing(&batch[i].event),
        })
        .collect();
    let mut tx = store.pool().begin().await?;
    let stored = JobStore::store_callbacks_in(&mut tx, &to_store).await?;
    let mut drafts: Vec<JobDraft> = Vec::new();
    let mut draft_of: HashMap<String, usize> = HashMap::new();
    // Upload events that completed their job: (event id, draft).
    let mut completed_by = Vec::new();
    let mut row_by_row = Vec::new();
    for (&i, s) in distinct.iter().zip(stored) {
        let p = &batch[i];
        let Some(id) = s.id else {
            outcomes[i] = Some(Outcome::Duplicate);
            continue;
        };
        let Some(owner) = s.owner else {
            if p.may_record_sts {
                row_by_row.push((i, id, None));
            } else {
                outcomes[i] = Some(Outcome::Stored);
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
            Outcome::Applied
        } else {
            Outcome::Stored
        });
    }
    let completed_by: Vec<(i64, &str)> = completed_by
        .iter()
        .map(|&(id, d)| (id, drafts[d].job_id()))
        .collect();
    let written = JobStore::write_drafts_in(&mut tx, &drafts, &completed_by).await?;
    let moved = written.transitions;
    let mut wake = written.history_rows > 0;
    let mut to_confirm = false;
    for (i, id, state) in row_by_row {
        let p = &batch[i];
        let (outcome, milestones, confirming) =
            apply_row_by_row(&mut tx, id, &p.event, state).await?;
        outcomes[i] = Some(outcome);
        wake |= milestones;
        to_confirm |= confirming;
    }
    tx.commit().await?;
    report(transitions, moved, wake);
    if to_confirm {
        confirm.notify_one();
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every callback has an outcome"))
        .collect())
}

/// An event that is applied to the job owning its media whatever the job's state: one that
/// says something about the media and is not an upload event.
fn is_processing(event: &ParsedEvent) -> bool {
    event.update.is_some() && completed_kind(&event.event_type).is_none()
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
) -> Result<(Outcome, bool, bool), sqlx::Error> {
    let Some(media_id) = &event.media_id else {
        return Ok((Outcome::Stored, false, false));
    };
    if completed_kind(&event.event_type).is_some() {
        if event.succeeded {
            JobStore::request_confirmation_in(tx, id).await?;
        }
        return Ok((Outcome::Stored, false, event.succeeded));
    }
    let Some(update) = &event.update else {
        return Ok((Outcome::Stored, false, false));
    };
    let proves_upload = update.uploaded || update.transcoding || !update.steps.is_empty();
    if state == Some(JobState::AwaitingUpload) {
        if proves_upload {
            JobStore::request_confirmation_in(tx, id).await?;
        }
        return Ok((Outcome::Stored, false, proves_upload));
    }
    // A client upload in `uploaded`: VOD confirmed the file; its size decides the outcome, so
    // the confirmer reads it from VOD.
    let Some(applied) = JobStore::apply_media_in(tx, media_id, update, None).await? else {
        return Ok((Outcome::Stored, false, false));
    };
    mark_applied(tx, id, &applied.job_id).await?;
    if proves_upload {
        JobStore::request_confirmation_in(tx, id).await?;
    }
    Ok((
        Outcome::Applied,
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
