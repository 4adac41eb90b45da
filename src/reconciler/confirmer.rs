//! The confirmer: VOD's callback signature does not cover the body, so an upload event for a
//! client upload (or a processing event that would complete one), and one for an STS upload no
//! job knows of, completes nothing until VOD's batch reads say the media has the file.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{lookup, upload_confirmed, Seen};
use crate::jobs::{JobKind, JobStore, OutboxWaker};
use crate::vod::VodClient;

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
    outbox: OutboxWaker,
    wake: std::sync::Arc<tokio::sync::Notify>,
    record_sts: bool,
    shutdown: CancellationToken,
) {
    loop {
        loop {
            match confirm_pass(&store, &vod, &outbox, record_sts).await {
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

/// One pass over the events waiting for confirmation; returns how many it looked at.
pub async fn confirm_pass(
    store: &JobStore,
    vod: &VodClient,
    outbox: &OutboxWaker,
    record_sts: bool,
) -> Result<usize, sqlx::Error> {
    let events = store
        .events_to_confirm(CONFIRM_RECHECK, CONFIRM_BATCH)
        .await?;
    let kind_of = |e: &crate::jobs::ToConfirm| -> Option<JobKind> {
        match &e.job_kind {
            Some(k) => k.parse().ok(),
            None => JobKind::completed_by(&e.event_type),
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
                let update = crate::jobs::parse_event(&event.body)
                    .and_then(|p| p.update)
                    .filter(|_| JobKind::completed_by(&event.event_type).is_none());
                let (t, milestones) = store
                    .confirm_upload(event, kind, *size, record_sts, update.as_ref())
                    .await?;
                metrics::counter!("vod_ingest_upload_confirmations_total", "outcome" => "confirmed")
                    .increment(1);
                if let Some(t) = t {
                    tracing::info!(job_id = %t.job_id, %media_id, state = %t.state, via = %event.event_type, "upload confirmed by VOD");
                    outbox.wake();
                } else if milestones {
                    outbox.wake();
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
