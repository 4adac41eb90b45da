//! The reconciler: VOD gives up on a callback after three tries and sends none for a failed
//! upload, so jobs that wait in `uploaded` too long are checked against VOD directly. Client
//! uploads that never report back (the app was closed, the user gave up) are checked after
//! `client_upload_timeout` and end `completed` (the callback was lost) or `failed`
//! (`UploadAbandoned`), so nothing waits forever.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::jobs::{Confirmation, JobKind, JobState, JobStore};
use crate::queue::TransitionSender;
use crate::vod::VodClient;

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// How long a job may wait in `uploaded` for its callback before VOD is asked.
    pub grace: Duration,
    /// Pause between passes.
    pub interval: Duration,
    /// Jobs looked at per pass.
    pub batch: i64,
    /// How long a client upload may go without completing (counted from the last credential
    /// handed out for it) before VOD is asked and the job ended.
    pub client_upload_timeout: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(120),
            interval: Duration::from_secs(30),
            batch: 100,
            client_upload_timeout: Duration::from_secs(24 * 3600),
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

/// What VOD says about a media: its status and the size of its stored file.
async fn media_status(
    vod: &VodClient,
    kind: JobKind,
    media_id: &str,
) -> Option<Result<(String, Option<u64>), crate::vod::VodError>> {
    Some(match kind {
        JobKind::Video => vod
            .get_video_info(media_id)
            .await
            .map(|v| (v.status, v.size)),
        JobKind::Image => vod
            .get_image_info(media_id)
            .await
            .map(|i| (i.status, i.file_size)),
        // VOD's GetAttachedMediaInfo is not wired up yet.
        JobKind::AttachedMedia => return None,
    })
}

/// One pass; returns how many jobs it moved on.
pub async fn pass(
    store: &JobStore,
    vod: &VodClient,
    transitions: &TransitionSender,
    config: &ReconcilerConfig,
) -> Result<usize, sqlx::Error> {
    let stale: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT job_id, kind, media_id FROM ingest_jobs
         WHERE state = 'uploaded' AND media_id IS NOT NULL
           AND uploaded_at < now() - make_interval(secs => $1)
         ORDER BY uploaded_at LIMIT $2",
    )
    .bind(config.grace.as_secs_f64())
    .bind(config.batch)
    .fetch_all(store.pool())
    .await?;
    let mut moved = 0;
    for (job_id, kind, media_id) in stale {
        let kind: JobKind = match kind.parse() {
            Ok(k) => k,
            Err(_) => continue,
        };
        // Attached media wait for their callback.
        let Some(status) = media_status(vod, kind, &media_id).await else {
            continue;
        };
        match status {
            Ok((status, size)) if upload_confirmed(kind, &status) => {
                let confirmation = Confirmation {
                    via: "reconciler",
                    size,
                };
                if let Some(t) = store.complete_by_media(&media_id, confirmation).await? {
                    tracing::info!(%job_id, %media_id, %status, state = %t.state, "moved on by the reconciler: its callback never came");
                    let _ = transitions.send(t);
                    moved += 1;
                }
            }
            Ok((status, _)) => tracing::debug!(%job_id, %status, "not confirmed yet"),
            Err(e) => tracing::warn!(%job_id, error = %e, "could not ask VOD about a job"),
        }
    }
    moved += abandoned_pass(store, vod, transitions, config).await?;
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
    let mut moved = 0;
    for job in idle {
        let Some(media_id) = job.media_id.clone() else {
            continue;
        };
        let kind = job.kind();
        let verdict = match media_status(vod, kind, &media_id).await {
            None => {
                Err("VOD cannot be asked about attached media, and no callback came".to_owned())
            }
            Some(Ok((status, size))) if upload_confirmed(kind, &status) => Ok(size),
            Some(Ok((status, _))) => Err(format!("VOD reports the media as {status}")),
            Some(Err(e)) if e.code() == "InvalidVideo.NotFound" || e.code() == "NoSuchResource" => {
                Err("VOD no longer knows the media".to_owned())
            }
            Some(Err(e)) => {
                tracing::warn!(job_id = %job.job_id, error = %e, "could not ask VOD about a client upload");
                continue;
            }
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
