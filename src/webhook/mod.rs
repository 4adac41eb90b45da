//! VOD's callbacks over HTTP (`POST /callbacks/vod`, on the public listener): read the body,
//! verify the signature, parse the event, and hand it to the store's intake
//! ([`crate::jobs::CallbackIntake`]), which stores and applies it. Nothing is stored for a
//! request that fails verification or is not an event. Also `/healthz`.

mod verify;

pub use verify::{CallbackAuth, Verdict};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;

use crate::jobs::{parse_event, CallbackIntake, CallbackOutcome, ParsedEvent, VerifiedCallback};

/// Callbacks larger than this are refused with 413; real ones are a few KB.
pub const DEFAULT_MAX_CALLBACK_BYTES: usize = 64 * 1024;

/// Everything the handler needs.
#[derive(Clone)]
pub struct WebhookState {
    pub auth: Arc<CallbackAuth>,
    pub intake: CallbackIntake,
    pub max_callback_bytes: usize,
    /// Record uploads VOD reports that no job knows of (clients with STS tokens create their
    /// own media) as jobs of origin `sts`.
    pub record_sts_uploads: bool,
}

/// The routes of the public listener, as the OpenAPI document names them.
pub const ROUTES: &[(&str, &str)] = &[("post", "/callbacks/vod"), ("get", "/healthz")];

/// The public listener's part: what VOD needs to reach.
pub fn router(state: WebhookState) -> Router {
    let max = state.max_callback_bytes;
    Router::new()
        .route(
            "/callbacks/vod",
            post(receive_callback).layer(DefaultBodyLimit::max(max)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Headers as stored: the signature is a short-lived bearer credential, so it is redacted.
fn headers_for_storage(headers: &HeaderMap) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        let value = match name {
            "x-vod-signature" | "authorization" | "cookie" => "[redacted]".to_owned(),
            _ => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        };
        map.insert(name.to_owned(), serde_json::Value::String(value));
    }
    serde_json::Value::Object(map)
}

/// Seconds between two log lines about refused callbacks: a flood of junk logs one line per
/// interval (with how many were refused since), not one per request.
const REFUSAL_LOG_INTERVAL_SECS: u64 = 10;

static REFUSAL_LOGGED_AT: AtomicU64 = AtomicU64::new(0);
static REFUSED_UNLOGGED: AtomicU64 = AtomicU64::new(0);

/// Logs a refused callback if none was logged this interval: its verdict and peer, never its
/// signature (a bearer credential while its window is open).
fn log_refusal(verdict: Verdict, peer: Option<SocketAddr>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = REFUSAL_LOGGED_AT.load(Ordering::Relaxed);
    if now < last + REFUSAL_LOG_INTERVAL_SECS
        || REFUSAL_LOGGED_AT
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        REFUSED_UNLOGGED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let unlogged = REFUSED_UNLOGGED.swap(0, Ordering::Relaxed);
    tracing::warn!(
        verification = verdict.as_str(),
        peer = ?peer,
        refused_since_last_line = unlogged,
        "refused a callback (not stored; all are counted in vod_ingest_callbacks_total)"
    );
}

async fn receive_callback(
    State(state): State<WebhookState>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        // As JSON like every other refusal (axum's own is plain text).
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                "CallbackTooLarge",
                &format!(
                    "the body is over {} bytes; VOD's callbacks are a few KB",
                    state.max_callback_bytes
                ),
            )
        }
        Err(rejection) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "InvalidEvent",
                &format!("the body could not be read: {}", rejection.body_text()),
            )
        }
    };
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let timestamp = header(&headers, "x-vod-timestamp");
    let verdict = state.auth.verify(
        timestamp,
        header(&headers, "x-vod-signature"),
        chrono::Utc::now().timestamp(),
    );
    let parsed = parse_event(&body);
    metrics::counter!("vod_ingest_callbacks_total", "verification" => verdict.as_str())
        .increment(1);
    match hand_over(&state, &headers, &body, verdict, parsed, timestamp).await {
        Ok(Handled::Stored(CallbackOutcome::Applied | CallbackOutcome::Stored)) => {
            (StatusCode::OK, "ok\n").into_response()
        }
        Ok(Handled::Stored(CallbackOutcome::Duplicate)) => {
            (StatusCode::OK, "duplicate\n").into_response()
        }
        Ok(Handled::Rejected) => {
            log_refusal(verdict, peer);
            error_body(
                StatusCode::UNAUTHORIZED,
                "InvalidSignature",
                verdict.explanation(),
            )
        }
        Ok(Handled::NotAnEvent) => error_body(
            StatusCode::BAD_REQUEST,
            "InvalidEvent",
            "the body is not a VOD event: expected a JSON object with an EventType",
        ),
        Err(e) => {
            // Not 200, so VOD sends it again.
            tracing::error!(error = %e, "could not store a callback");
            error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "StoreUnavailable",
                "the event could not be stored; VOD will retry",
            )
        }
    }
}

enum Handled {
    Stored(CallbackOutcome),
    Rejected,
    NotAnEvent,
}

async fn hand_over(
    state: &WebhookState,
    headers: &HeaderMap,
    body: &Bytes,
    verdict: Verdict,
    parsed: Option<ParsedEvent>,
    timestamp: Option<&str>,
) -> Result<Handled, Arc<sqlx::Error>> {
    match (verdict.accepted(), parsed) {
        (true, Some(event)) => {
            let callback = VerifiedCallback::new(
                verdict.as_str(),
                timestamp.and_then(|t| t.trim().parse::<i64>().ok()),
                headers_for_storage(headers),
                body.clone(),
                event,
                state.record_sts_uploads,
            );
            state.intake.submit(callback).await.map(Handled::Stored)
        }
        // Refused or not an event: nothing is stored, so junk at a public URL cannot fill the
        // database; the verdict is counted in `vod_ingest_callbacks_total` and sampled in the log.
        (true, None) => Ok(Handled::NotAnEvent),
        (false, _) => Ok(Handled::Rejected),
    }
}
