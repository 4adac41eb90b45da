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

mod confirmer;

pub use confirmer::{confirm_pass, run_confirmer};

use crate::jobs::{
    Confirmation, Job, JobKind, JobState, JobStore, MediaUpdate, OutboxWaker, Slot, StepEntry,
};
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
    outbox: OutboxWaker,
    config: ReconcilerConfig,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = pass(&store, &vod, &outbox, &config).await {
            tracing::warn!(error = %e, "reconciler pass failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
    }
}

/// One pass; returns how many jobs it moved on (state changes and media outcomes).
pub async fn pass(
    store: &JobStore,
    vod: &VodClient,
    outbox: &OutboxWaker,
    config: &ReconcilerConfig,
) -> Result<usize, sqlx::Error> {
    let mut moved = uploaded_pass(store, vod, outbox, config).await?;
    moved += processing_pass(store, vod, outbox, config).await?;
    moved += abandoned_pass(store, vod, outbox, config).await?;
    Ok(moved)
}

/// Jobs in `uploaded` past the grace period.
async fn uploaded_pass(
    store: &JobStore,
    vod: &VodClient,
    outbox: &OutboxWaker,
    config: &ReconcilerConfig,
) -> Result<usize, sqlx::Error> {
    let stale = store
        .uploaded_awaiting_check(config.grace, config.interval.mul_f64(0.9), config.batch)
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
                store.mark_media_checked(&job.job_id).await?;
                if let Some(t) = t {
                    tracing::info!(job_id = %job.job_id, %media_id, %status, state = %t.state, "moved on by the reconciler: its callback never came");
                    outbox.wake();
                    moved += 1;
                } else if applied.is_some_and(|a| !a.milestones.is_empty()) {
                    outbox.wake();
                }
                continue;
            }
            Some(Seen::Found { status, .. }) if status == "UploadFail" => (
                "UploadFailed",
                format!("VOD reports the upload of media {media_id} as UploadFail"),
            ),
            Some(Seen::Found { status, .. }) => {
                tracing::debug!(job_id = %job.job_id, %status, "not confirmed yet");
                store.mark_media_checked(&job.job_id).await?;
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
        let checks = store.count_missing_check(&job.job_id).await?;
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
        if store
            .fail_unleased(&job.job_id, JobState::Uploaded, code, &message)
            .await?
            .is_some()
        {
            tracing::warn!(job_id = %job.job_id, %media_id, code, "failed by the reconciler");
            outbox.wake();
            moved += 1;
        }
    }
    Ok(moved)
}

/// Completed videos without a processing outcome past `processing_grace`.
async fn processing_pass(
    store: &JobStore,
    vod: &VodClient,
    outbox: &OutboxWaker,
    config: &ReconcilerConfig,
) -> Result<usize, sqlx::Error> {
    let waiting = store
        .completed_awaiting_outcome(
            config.processing_grace,
            config.interval.mul_f64(0.9),
            config.batch,
        )
        .await?;
    let seen = lookup_jobs(vod, &waiting).await;
    let mut moved = 0;
    for job in &waiting {
        let media_id = job.media_id.as_deref().expect("selected");
        let update = match seen.get(media_id) {
            None => continue,
            Some(Seen::Found { status, .. }) => status_update(status),
            Some(Seen::Missing) => {
                let checks = store.count_missing_check(&job.job_id).await?;
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
        store.mark_media_checked(&job.job_id).await?;
        if let Some(a) = applied.filter(|a| !a.milestones.is_empty()) {
            tracing::info!(job_id = %job.job_id, %media_id, media_status = ?a.media_status, "media outcome from the reconciler: its processing events never came");
            outbox.wake();
            moved += 1;
        }
    }
    Ok(moved)
}

/// Client uploads idle past the timeout: completed if VOD has the file, else `UploadAbandoned`.
async fn abandoned_pass(
    store: &JobStore,
    vod: &VodClient,
    outbox: &OutboxWaker,
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
            outbox.wake();
            moved += 1;
        }
    }
    Ok(moved)
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
