//! How VOD delivers an event callback, for the upload events (`callback`) and the processing
//! events (`processing`) alike (`docs/reference/callbacks.md` §3, §4, §7): `X-VOD-TIMESTAMP` /
//! `X-VOD-SIGNATURE` when a key is configured, 5 s timeout, only 200 is success, no redirects,
//! 3 attempts about 1 s apart, then the event is dropped. Its own module, below both, so that
//! `callback` (which starts the processing) and `processing` import one way.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::params::{extend_string, nested_json};
use super::state::{Media, Shared};
use crate::sign;

const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_secs(1);

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
