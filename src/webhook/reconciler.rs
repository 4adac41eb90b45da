//! The reconciler: VOD gives up on a callback after three tries and sends none for a failed
//! upload, so it asks VOD directly, in batches of up to 20 ids per call (`GetVideoInfos`,
//! `GetImageInfos`, `GetAttachedMediaInfo`), about:
//!
//! - jobs that wait in `uploaded` longer than `grace`: completed when VOD has the file;
//!   `failed` with `MediaNotFound` or `UploadFailed` once VOD has reported the media missing
//!   (or its upload failed) in `missing_checks` checks in a row, one check per `interval`;
//! - completed videos whose processing events never came (no outcome `processing_grace` after
//!   completion): VOD's status becomes the job's media status (`Normal` -> `media.playable`,
//!   `TranscodeFail` -> `media.transcode_failed`); a video VOD no longer knows, after
//!   `missing_checks` checks, gets media status `Missing` (`media.missing`) and is left alone;
//! - client uploads that never report back (the app was closed, the user gave up), after
//!   `client_upload_timeout`: `completed` (the callback was lost) or `failed`
//!   (`UploadAbandoned`), so nothing waits forever.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::jobs::{Confirmation, Job, JobKind, JobState, JobStore, MediaUpdate, Slot, StepEntry};
use crate::queue::TransitionSender;
use crate::vod::{VodClient, VodError};

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// How long a job may wait in `uploaded` for its callback before VOD is asked.
    pub grace: Duration,
    /// Pause between passes; also the least time between two questions about one job.
    pub interval: Duration,
    /// Jobs looked at per pass and per kind of question.
    pub batch: i64,
    /// How long a client upload may go without completing (counted from the last credential
    /// handed out for it) before VOD is asked and the job ended.
    pub client_upload_timeout: Duration,
    /// How long after its completion a video may go without a processing outcome (playable or
    /// failed) before VOD is asked for its status.
    pub processing_grace: Duration,
    /// Checks in a row that find a media missing (or its upload failed) before the job ends
    /// `failed` (or, once completed, its media status becomes `Missing`).
    pub missing_checks: u32,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(120),
            interval: Duration::from_secs(30),
            batch: 100,
            client_upload_timeout: Duration::from_secs(24 * 3600),
            processing_grace: Duration::from_secs(600),
            missing_checks: 3,
        }
    }
}

/// Media statuses that mean VOD has the whole file.
fn upload_confirmed(kind: JobKind, status: &str) -> bool {
    match kind {
        JobKind::Video => matches!(
            status,
            "UploadSucc" | "Transcoding" | "TranscodeFail" | "Checking" | "Blocked" | "Normal"
        ),
        JobKind::Image | JobKind::AttachedMedia => status == "Normal",
    }
}

/// What VOD said about one media.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Found { status: String, size: Option<u64> },
    Missing,
}

/// Asks VOD about `ids` of one kind, in batches.
async fn lookup(
    vod: &VodClient,
    kind: JobKind,
    ids: Vec<String>,
) -> Result<HashMap<String, Seen>, VodError> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let missing = match kind {
        JobKind::Video => {
            let b = vod.get_video_infos(&ids).await?;
            for v in b.found {
                out.insert(
                    v.video_id,
                    Seen::Found {
                        status: v.status,
                        size: v.size,
                    },
                );
            }
            b.missing
        }
        JobKind::Image => {
            let b = vod.get_image_infos(&ids).await?;
            for i in b.found {
                out.insert(
                    i.image_id,
                    Seen::Found {
                        status: i.status,
                        size: i.file_size,
                    },
                );
            }
            b.missing
        }
        JobKind::AttachedMedia => {
            let b = vod.get_attached_media_infos(&ids).await?;
            for a in b.found {
                out.insert(
                    a.media_id,
                    Seen::Found {
                        status: a.status,
                        size: a.file_size,
                    },
                );
            }
            b.missing
        }
    };
    for id in missing {
        out.insert(id, Seen::Missing);
    }
    Ok(out)
}

/// Asks about every job's media, grouped by kind; a kind whose question failed is left out
/// (asked again next pass).
async fn lookup_jobs(vod: &VodClient, jobs: &[Job]) -> HashMap<String, Seen> {
    let mut out = HashMap::new();
    for kind in [JobKind::Video, JobKind::Image, JobKind::AttachedMedia] {
        let ids: Vec<String> = jobs
            .iter()
            .filter(|j| j.kind() == kind)
            .filter_map(|j| j.media_id.clone())
            .collect();
        match lookup(vod, kind, ids).await {
            Ok(seen) => out.extend(seen),
            Err(e) => tracing::warn!(%kind, error = %e, "could not ask VOD about media"),
        }
    }
    out
}

/// What VOD's status says about processing, as an observation of the media.
fn status_update(status: &str) -> MediaUpdate {
    let inferred = |s: &str| StepEntry::new(s, None, "reconciler");
    let mut update = MediaUpdate {
        uploaded: true,
        ..Default::default()
    };
    match status {
        "Normal" => update.steps.push((Slot::Transcode, inferred("success"))),
        "TranscodeFail" => update.steps.push((
            Slot::Transcode,
            inferred("fail").with("error_code", "TranscodeFail").with(
                "error_message",
                "VOD reports the video as TranscodeFail; its processing events never came, \
                 so VOD's console or its transcode job says why",
            ),
        )),
        "Blocked" => update.steps.push((Slot::Audit, inferred("Blocked"))),
        "Transcoding" | "Checking" => update.transcoding = true,
        _ => {}
    }
    update
}

/// Runs passes until `shutdown`.
pub async fn run(
    store: JobStore,
    vod: VodClient,
    transitions: TransitionSender,
    config: ReconcilerConfig,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = pass(&store, &vod, &transitions, &config).await {
            tracing::warn!(error = %e, "reconciler pass failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
    }
}

/// Counts a check that found the media missing or failed; returns the checks in a row.
async fn count_check(store: &JobStore, job_id: &str) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE ingest_jobs SET media_checks = media_checks + 1, media_checked_at = now()
         WHERE job_id = $1 RETURNING media_checks",
    )
    .bind(job_id)
    .fetch_one(store.pool())
    .await
}

async fn checked(store: &JobStore, job_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ingest_jobs SET media_checked_at = now() WHERE job_id = $1")
        .bind(job_id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// One pass; returns how many jobs it moved on (state changes and media outcomes).
pub async fn pass(
    store: &JobStore,
    vod: &VodClient,
    transitions: &TransitionSender,
    config: &ReconcilerConfig,
) -> Result<usize, sqlx::Error> {
    let mut moved = uploaded_pass(store, vod, transitions, config).await?;
    moved += processing_pass(store, vod, transitions, config).await?;
    moved += abandoned_pass(store, vod, transitions, config).await?;
    Ok(moved)
}

/// Jobs in `uploaded` past the grace period.
async fn uploaded_pass(
    store: &JobStore,
    vod: &VodClient,
    transitions: &TransitionSender,
    config: &ReconcilerConfig,
) -> Result<usize, sqlx::Error> {
    let stale: Vec<Job> = sqlx::query_as(
        "SELECT * FROM ingest_jobs
         WHERE state = 'uploaded' AND media_id IS NOT NULL
           AND uploaded_at < now() - make_interval(secs => $1)
           AND (media_checked_at IS NULL OR media_checked_at < now() - make_interval(secs => $3))
         ORDER BY uploaded_at LIMIT $2",
    )
    .bind(config.grace.as_secs_f64())
    .bind(config.batch)
    .bind(config.interval.as_secs_f64() * 0.9)
    .fetch_all(store.pool())
    .await?;
    let seen = lookup_jobs(vod, &stale).await;
    let mut moved = 0;
    for job in &stale {
        let media_id = job.media_id.as_deref().expect("selected");
        let kind = job.kind();
        let problem = match seen.get(media_id) {
            None => continue,
            Some(Seen::Found { status, size }) if upload_confirmed(kind, status) => {
                let confirmation = Confirmation {
                    via: "reconciler",
                    size: *size,
                };
                let update = match kind {
                    JobKind::Video => status_update(status),
                    _ => MediaUpdate {
                        uploaded: true,
                        ..Default::default()
                    },
                };
                // One transaction: the job completes together with its media status.
                let applied = store
                    .apply_media(media_id, &update, Some(confirmation))
                    .await?;
                let t = applied.as_ref().and_then(|a| a.transition.clone());
                checked(store, &job.job_id).await?;
                if let Some(t) = t {
                    tracing::info!(job_id = %job.job_id, %media_id, %status, state = %t.state, "moved on by the reconciler: its callback never came");
                    let _ = transitions.send(t);
                    moved += 1;
                } else if let Some(a) = applied.filter(|a| !a.milestones.is_empty()) {
                    let _ = transitions.send(a.wake());
                }
                continue;
            }
            Some(Seen::Found { status, .. }) if status == "UploadFail" => (
                "UploadFailed",
                format!("VOD reports the upload of media {media_id} as UploadFail"),
            ),
            Some(Seen::Found { status, .. }) => {
                tracing::debug!(job_id = %job.job_id, %status, "not confirmed yet");
                checked(store, &job.job_id).await?;
                continue;
            }
            Some(Seen::Missing) => (
                "MediaNotFound",
                format!(
                    "VOD does not know media {media_id} (it was deleted, or belongs to another \
                     account or region)"
                ),
            ),
        };
        let (code, why) = problem;
        let checks = count_check(store, &job.job_id).await?;
        if checks < config.missing_checks as i32 {
            tracing::info!(job_id = %job.job_id, %media_id, checks, code, "media not confirmed; will check again");
            continue;
        }
        let message = format!(
            "{why}, in {checks} checks {} s apart; the bytes may not be in VOD. \
             `vod-ingest retry {}` uploads again",
            config.interval.as_secs(),
            job.job_id
        );
        if let Some(t) = store
            .fail_unleased(&job.job_id, JobState::Uploaded, code, &message)
            .await?
        {
            tracing::warn!(job_id = %job.job_id, %media_id, code, "failed by the reconciler");
            let _ = transitions.send(t);
            moved += 1;
        }
    }
    Ok(moved)
}

/// Completed videos without a processing outcome past `processing_grace`.
async fn processing_pass(
    store: &JobStore,
    vod: &VodClient,
    transitions: &TransitionSender,
    config: &ReconcilerConfig,
) -> Result<usize, sqlx::Error> {
    let waiting: Vec<Job> = sqlx::query_as(
        "SELECT * FROM ingest_jobs
         WHERE state = 'completed' AND kind = 'video' AND media_id IS NOT NULL
           AND (media_status IS NULL OR media_status IN ('UploadSucc', 'Transcoding'))
           AND completed_at < now() - make_interval(secs => $1)
           AND (media_checked_at IS NULL OR media_checked_at < now() - make_interval(secs => $3))
         ORDER BY completed_at LIMIT $2",
    )
    .bind(config.processing_grace.as_secs_f64())
    .bind(config.batch)
    .bind(config.interval.as_secs_f64() * 0.9)
    .fetch_all(store.pool())
    .await?;
    let seen = lookup_jobs(vod, &waiting).await;
    let mut moved = 0;
    for job in &waiting {
        let media_id = job.media_id.as_deref().expect("selected");
        let update = match seen.get(media_id) {
            None => continue,
            Some(Seen::Found { status, .. }) => status_update(status),
            Some(Seen::Missing) => {
                let checks = count_check(store, &job.job_id).await?;
                if checks < config.missing_checks as i32 {
                    continue;
                }
                MediaUpdate {
                    missing: true,
                    ..Default::default()
                }
            }
        };
        let applied = store.apply_media(media_id, &update, None).await?;
        checked(store, &job.job_id).await?;
        if let Some(a) = applied.filter(|a| !a.milestones.is_empty()) {
            tracing::info!(job_id = %job.job_id, %media_id, media_status = ?a.media_status, "media outcome from the reconciler: its processing events never came");
            let _ = transitions.send(a.wake());
            moved += 1;
        }
    }
    Ok(moved)
}

/// Client uploads idle past the timeout: completed if VOD has the file, else `UploadAbandoned`.
async fn abandoned_pass(
    store: &JobStore,
    vod: &VodClient,
    transitions: &TransitionSender,
    config: &ReconcilerConfig,
) -> Result<usize, sqlx::Error> {
    let idle = store
        .idle_client_uploads(config.client_upload_timeout, config.batch)
        .await?;
    let seen = lookup_jobs(vod, &idle).await;
    let mut moved = 0;
    for job in idle {
        let Some(media_id) = job.media_id.clone() else {
            continue;
        };
        let kind = job.kind();
        let verdict = match seen.get(&media_id) {
            // The question failed; asked again next pass.
            None => continue,
            Some(Seen::Found { status, size }) if upload_confirmed(kind, status) => Ok(*size),
            Some(Seen::Found { status, .. }) => Err(format!("VOD reports the media as {status}")),
            Some(Seen::Missing) => Err("VOD no longer knows the media".to_owned()),
        };
        let transition = match verdict {
            Ok(size) => {
                let confirmation = Confirmation {
                    via: "reconciler",
                    size,
                };
                store.complete_by_media(&media_id, confirmation).await?
            }
            Err(why) => {
                let message = format!(
                    "the client app did not finish its upload within {} s of its last credential; {why}. \
                     The app can start a new upload; the media {media_id} can be deleted in VOD",
                    config.client_upload_timeout.as_secs()
                );
                store
                    .fail_unleased(
                        &job.job_id,
                        JobState::AwaitingUpload,
                        "UploadAbandoned",
                        &message,
                    )
                    .await?
            }
        };
        if let Some(t) = transition {
            tracing::info!(job_id = %t.job_id, state = %t.state, "client upload settled by the reconciler");
            let _ = transitions.send(t);
            moved += 1;
        }
    }
    Ok(moved)
}

/// How soon the confirmer asks VOD again about a media that is not uploaded yet (VOD's status
/// can lag its event by a moment).
const CONFIRM_RECHECK: Duration = Duration::from_secs(5);

/// How long an event waits for VOD to confirm it before it is given up on (it stays stored,
/// unapplied; the reconciler's client-upload timeout still settles the job).
const CONFIRM_PATIENCE: Duration = Duration::from_secs(120);

/// Events one confirmer pass takes (their media are asked about 20 ids per call).
const CONFIRM_BATCH: i64 = 100;

/// The confirmer: VOD's callback signature does not cover the body, so an upload event for a
/// client upload (or a processing event that would complete one), and one for an STS upload no
/// job knows of, completes nothing until VOD's batch reads say the media has the file. Woken
/// by the webhook at once (`wake`), so a real event still completes its job within a round
/// trip to VOD; it also looks every [`CONFIRM_RECHECK`] for media still uploading.
pub async fn run_confirmer(
    store: JobStore,
    vod: VodClient,
    transitions: TransitionSender,
    wake: std::sync::Arc<tokio::sync::Notify>,
    record_sts: bool,
    shutdown: CancellationToken,
) {
    loop {
        loop {
            match confirm_pass(&store, &vod, &transitions, record_sts).await {
                Ok(n) if n as i64 >= CONFIRM_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "confirming uploads with VOD failed; trying again shortly");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(CONFIRM_RECHECK) => {}
        }
    }
}

/// The kind whose upload `event_type` reports complete, for the three upload events.
fn kind_of_upload(event_type: &str) -> Option<JobKind> {
    [JobKind::Video, JobKind::Image, JobKind::AttachedMedia]
        .into_iter()
        .find(|k| k.completion_event() == event_type)
}

/// One pass over the events waiting for confirmation; returns how many it looked at.
pub async fn confirm_pass(
    store: &JobStore,
    vod: &VodClient,
    transitions: &TransitionSender,
    record_sts: bool,
) -> Result<usize, sqlx::Error> {
    let events = store
        .events_to_confirm(CONFIRM_RECHECK, CONFIRM_BATCH)
        .await?;
    let kind_of = |e: &crate::jobs::ToConfirm| -> Option<JobKind> {
        match &e.job_kind {
            Some(k) => k.parse().ok(),
            None => kind_of_upload(&e.event_type),
        }
    };
    let mut seen = HashMap::new();
    for kind in [JobKind::Video, JobKind::Image, JobKind::AttachedMedia] {
        let mut ids: Vec<String> = events
            .iter()
            .filter(|e| kind_of(e) == Some(kind))
            .map(|e| e.media_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        match lookup(vod, kind, ids).await {
            Ok(found) => seen.extend(found),
            Err(e) => tracing::warn!(%kind, error = %e, "could not ask VOD to confirm uploads"),
        }
    }
    for event in &events {
        let Some(kind) = kind_of(event) else {
            store
                .refuse_confirmation(event.id, "unknown_kind", true)
                .await?;
            continue;
        };
        let media_id = event.media_id.as_str();
        let (outcome, give_up) = match seen.get(media_id) {
            // The question failed: asked again next pass.
            None => continue,
            Some(Seen::Found { status, size }) if upload_confirmed(kind, status) => {
                // A processing event's news, held back until VOD confirmed the upload.
                let update = super::parse_event(&event.body)
                    .and_then(|p| p.update)
                    .filter(|_| kind_of_upload(&event.event_type).is_none());
                let (t, milestones) = store
                    .confirm_upload(event, kind, *size, record_sts, update.as_ref())
                    .await?;
                metrics::counter!("vod_ingest_upload_confirmations_total", "outcome" => "confirmed")
                    .increment(1);
                if let Some(t) = t {
                    tracing::info!(job_id = %t.job_id, %media_id, state = %t.state, via = %event.event_type, "upload confirmed by VOD");
                    let _ = transitions.send(t);
                } else if milestones {
                    let _ = transitions.send(crate::jobs::Transition::wake_up());
                }
                continue;
            }
            Some(Seen::Found { status, .. }) => (
                status.clone(),
                status == "UploadFail"
                    || event.confirm_requested_at < chrono::Utc::now() - CONFIRM_PATIENCE,
            ),
            Some(Seen::Missing) => ("not_found".to_owned(), true),
        };
        store
            .refuse_confirmation(event.id, &outcome, give_up)
            .await?;
        if give_up {
            metrics::counter!("vod_ingest_upload_confirmations_total", "outcome" => "refused")
                .increment(1);
            tracing::warn!(
                %media_id,
                event_type = %event.event_type,
                vod_says = %outcome,
                "a signed callback reported an upload VOD does not confirm; it changed nothing \
                 (a forged or stale event: the signature does not cover the body)"
            );
        }
    }
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vod_statuses_become_media_outcomes() {
        let normal = status_update("Normal");
        assert!(normal
            .steps
            .iter()
            .any(|(s, e)| *s == Slot::Transcode && e.succeeded()));
        let failed = status_update("TranscodeFail");
        assert!(failed
            .steps
            .iter()
            .any(|(s, e)| *s == Slot::Transcode && !e.succeeded()));
        assert!(status_update("Transcoding").transcoding);
        assert!(status_update("UploadSucc").steps.is_empty());
    }
}
