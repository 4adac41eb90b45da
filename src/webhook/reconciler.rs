//! The reconciler: VOD gives up on a callback after three tries and sends none for a failed
//! upload, so jobs that wait in `uploaded` too long are checked against VOD directly.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::jobs::{JobKind, JobStore};
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
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(120),
            interval: Duration::from_secs(30),
            batch: 100,
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

/// One pass; returns how many jobs it completed.
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
    let mut completed = 0;
    for (job_id, kind, media_id) in stale {
        let kind: JobKind = match kind.parse() {
            Ok(k) => k,
            Err(_) => continue,
        };
        let status = match kind {
            JobKind::Video => vod.get_video_info(&media_id).await.map(|v| v.status),
            JobKind::Image => vod.get_image_info(&media_id).await.map(|i| i.status),
            // VOD's GetAttachedMediaInfo is not wired up yet: these wait for their callback.
            JobKind::AttachedMedia => continue,
        };
        match status {
            Ok(status) if upload_confirmed(kind, &status) => {
                if let Some(t) = store.complete_by_media(&media_id, "reconciler").await? {
                    tracing::info!(%job_id, %media_id, %status, "completed by the reconciler: its callback never came");
                    let _ = transitions.send(t);
                    completed += 1;
                }
            }
            Ok(status) => tracing::debug!(%job_id, %status, "not confirmed yet"),
            Err(e) => tracing::warn!(%job_id, error = %e, "could not ask VOD about a job"),
        }
    }
    Ok(completed)
}
