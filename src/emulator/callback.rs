//! What happens when an upload completes: media status moves on, and VOD's event callback is
//! delivered as the real sender does it (`docs/reference/callbacks.md` §3, §4, §7): compact JSON with
//! `Status` first, `X-VOD-TIMESTAMP` / `X-VOD-SIGNATURE` when a key is configured, 5 s timeout,
//! only 200 is success, no redirects, 3 attempts about 1 s apart, then the event is dropped.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use super::rpc::{extend_string, nested_json};
use super::state::{Media, MediaKind, Shared};
use crate::sign;

const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_secs(1);

// Field order follows the documented samples (DOC-CUR for videos, DOC-2021 for images and
// attached media), with `Status` first as in real captures.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FileUploadComplete<'a> {
    status: &'a str,
    event_time: &'a str,
    event_type: &'a str,
    video_id: &'a str,
    size: u64,
    file_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    extend: Option<String>,
}

#[derive(Serialize)]
struct ImageUploadComplete<'a> {
    #[serde(rename = "Status")]
    status: &'a str,
    #[serde(rename = "FileURL")]
    file_url: &'a str,
    #[serde(rename = "AppId")]
    app_id: &'a str,
    #[serde(rename = "EventType")]
    event_type: &'a str,
    #[serde(rename = "EventTime")]
    event_time: &'a str,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "ImageId")]
    image_id: &'a str,
    #[serde(rename = "Extend", skip_serializing_if = "Option::is_none")]
    extend: Option<String>,
}

#[derive(Serialize)]
struct AttachedMediaUploadComplete<'a> {
    #[serde(rename = "Status")]
    status: &'a str,
    #[serde(rename = "EventTime")]
    event_time: &'a str,
    #[serde(rename = "EventType")]
    event_type: &'a str,
    #[serde(rename = "AttachedMediaId")]
    attached_media_id: &'a str,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "FileURL")]
    file_url: &'a str,
    #[serde(rename = "Extend", skip_serializing_if = "Option::is_none")]
    extend: Option<String>,
}

/// Called after an object was stored. If it is the `FileName` of a media asset, the asset is
/// marked uploaded and its callback is sent in the background (never delaying the PUT).
pub(crate) fn object_stored(shared: &Arc<Shared>, bucket: &str, key: &str, size: u64) {
    let media = {
        let mut inner = shared.lock();
        let Some(id) = inner
            .media_by_object
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
        else {
            return;
        };
        let Some(media) = inner.media.get_mut(&id) else {
            return;
        };
        media.size = Some(size);
        media.modified = Utc::now();
        media.status = match media.kind {
            MediaKind::Video => "UploadSucc",
            MediaKind::Image | MediaKind::Attached => "Normal",
        };
        media.clone()
    };
    if media.kind == MediaKind::Video {
        super::processing::start(shared.clone(), media.id.clone());
    }
    let Some((url, body)) = event(shared, &media, size) else {
        return;
    };
    let event_type = match media.kind {
        MediaKind::Video => "FileUploadComplete",
        MediaKind::Image => "ImageUploadComplete",
        MediaKind::Attached => "AttachedMediaUploadComplete",
    };
    send_event(shared, url, event_type, body);
}

/// Sends one event as VOD does, through the delivery faults: `callback_drop` and
/// `drop_event_types` lose it, `event_loss_rate` loses it at random (as three failed attempts
/// would), `callback_duplicate` / `event_duplicate_rate` deliver it twice (as VOD does when a
/// 200 comes too late), `event_delay_ms` holds it back.
pub(crate) fn send_event(shared: &Arc<Shared>, url: String, event_type: &str, body: String) {
    let (lost, duplicate, delay) = {
        let inner = shared.lock();
        let f = &inner.faults;
        let lost = f.callback_drop
            || f.drop_event_types.iter().any(|t| t == event_type)
            || (f.event_loss_rate > 0.0 && rand::random::<f64>() < f.event_loss_rate);
        let duplicate = f.callback_duplicate
            || (f.event_duplicate_rate > 0.0 && rand::random::<f64>() < f.event_duplicate_rate);
        (lost, duplicate, f.event_delay_ms)
    };
    if lost {
        let mut inner = shared.lock();
        inner.stats.callbacks_failed += 1;
        *inner
            .stats
            .events_lost
            .entry(event_type.to_owned())
            .or_default() += 1;
        return;
    }
    for _ in 0..if duplicate { 2 } else { 1 } {
        let (shared, url, body, event_type) = (
            shared.clone(),
            url.clone(),
            body.clone(),
            event_type.to_owned(),
        );
        tokio::spawn(async move {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            deliver(shared, url, event_type, body).await;
        });
    }
}

/// Where a media's events go (UserData's `CallbackURL`, else the configured one) and the
/// `Extend` they carry back.
pub(crate) fn callback_target(shared: &Shared, media: &Media) -> Option<(String, Option<String>)> {
    let user_data: Option<serde_json::Map<String, serde_json::Value>> = media
        .user_data
        .as_deref()
        .and_then(|u| serde_json::from_str(u).ok());
    let url = user_data
        .as_ref()
        .and_then(|u| u.get("MessageCallback"))
        .and_then(nested_json)
        .and_then(|mc| {
            mc.get("CallbackURL")
                .and_then(|u| u.as_str())
                .map(str::to_owned)
        })
        .or_else(|| shared.config.callback_url.clone())?;
    let extend = user_data
        .as_ref()
        .and_then(|u| u.get("Extend"))
        .map(extend_string);
    Some((url, extend))
}

/// The callback URL and the upload event's body.
fn event(shared: &Shared, media: &Media, size: u64) -> Option<(String, String)> {
    let (url, extend) = callback_target(shared, media)?;
    let event_time = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let file_url = format!("{}/{}/{}", shared.base_url, media.bucket, media.key);
    let body = match media.kind {
        MediaKind::Video => serde_json::to_string(&FileUploadComplete {
            status: "success",
            event_time: &event_time,
            event_type: "FileUploadComplete",
            video_id: &media.id,
            size,
            file_url: &file_url,
            extend,
        }),
        MediaKind::Image => serde_json::to_string(&ImageUploadComplete {
            status: "success",
            file_url: &file_url,
            app_id: &media.app_id,
            event_type: "ImageUploadComplete",
            event_time: &event_time,
            size,
            image_id: &media.id,
            extend,
        }),
        MediaKind::Attached => serde_json::to_string(&AttachedMediaUploadComplete {
            status: "success",
            event_time: &event_time,
            event_type: "AttachedMediaUploadComplete",
            attached_media_id: &media.id,
            size,
            file_url: &file_url,
            extend,
        }),
    }
    .ok()?;
    Some((url, body))
}

/// Up to three attempts; the same body each time, a fresh timestamp and signature per attempt
/// (the timestamp is "when the callback request is sent").
async fn deliver(shared: Arc<Shared>, url: String, event_type: String, body: String) {
    // Only scheme, host and path go to the log: a query string may carry a secret.
    let shown = url.split('?').next().unwrap_or_default().to_owned();
    for attempt in 1..=ATTEMPTS {
        let mut request = shared
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(key) = &shared.config.callback_key {
            let ts = Utc::now().timestamp().to_string();
            let signature = sign::callback::signature(&url, &ts, key.expose());
            request = request
                .header("X-VOD-TIMESTAMP", ts)
                .header("X-VOD-SIGNATURE", signature);
        }
        match request.send().await {
            Ok(resp) if resp.status() == reqwest::StatusCode::OK => {
                let mut inner = shared.lock();
                inner.stats.callbacks_sent += 1;
                *inner.stats.events_sent.entry(event_type).or_default() += 1;
                return;
            }
            Ok(resp) => {
                tracing::info!(url = %shown, attempt, status = %resp.status(), "callback refused")
            }
            Err(e) => {
                tracing::info!(url = %shown, attempt, error = %e.without_url(), "callback failed")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    tracing::warn!(url = %shown, %event_type, "callback dropped after {ATTEMPTS} attempts");
    let mut inner = shared.lock();
    inner.stats.callbacks_failed += 1;
    *inner.stats.events_lost.entry(event_type).or_default() += 1;
}
