//! VOD callbacks (`POST /callbacks/vod`, on the public listener) and the operators' endpoints
//! (`/readyz`, `/metrics`, `/v1/jobs/{job_id}`, on the private admin listener, where the
//! console of [`crate::console`] is mounted too). Both answer `/healthz`.

mod batch;
mod event;
pub mod reconciler;
mod verify;

pub(crate) use event::{parse_event, ParsedEvent};

pub use verify::{CallbackAuth, Verdict};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::jobs::{JobKind, JobStore};
use crate::queue::TransitionSender;
use crate::secret::Secret;

/// Callbacks larger than this are refused with 413; real ones are a few KB.
pub const DEFAULT_MAX_CALLBACK_BYTES: usize = 64 * 1024;

/// Everything the handlers need.
#[derive(Clone)]
pub struct HttpState {
    pub store: JobStore,
    pub auth: Arc<CallbackAuth>,
    pub transitions: TransitionSender,
    /// Whether RabbitMQ is reachable, for `/readyz`.
    pub amqp_ready: Arc<dyn Fn() -> bool + Send + Sync>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub max_callback_bytes: usize,
    /// Record uploads VOD reports that no job knows of (clients with STS tokens create their
    /// own media) as jobs of origin `sts`.
    pub record_sts_uploads: bool,
    /// Stores and applies authenticated callbacks in batches ([`HttpState::new`] starts it).
    callbacks: batch::Batcher,
    /// Wakes the confirmer when a callback leaves an upload for VOD to confirm.
    pub confirm: Arc<tokio::sync::Notify>,
}

impl HttpState {
    /// Starts the callback batch tasks too (they end when the last clone is dropped).
    pub fn new(
        store: JobStore,
        auth: Arc<CallbackAuth>,
        transitions: TransitionSender,
        amqp_ready: Arc<dyn Fn() -> bool + Send + Sync>,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
        max_callback_bytes: usize,
        record_sts_uploads: bool,
    ) -> Self {
        let confirm = Arc::new(tokio::sync::Notify::new());
        let callbacks = batch::Batcher::start(store.clone(), transitions.clone(), confirm.clone());
        Self {
            store,
            auth,
            transitions,
            amqp_ready,
            metrics,
            max_callback_bytes,
            record_sts_uploads,
            callbacks,
            confirm,
        }
    }
}

/// The routes of the public listener, as the OpenAPI document names them.
pub const ROUTES: &[(&str, &str)] = &[("post", "/callbacks/vod"), ("get", "/healthz")];

/// The routes of the admin listener (operators only).
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/jobs/{job_id}"),
];

/// The public listener's part: what VOD needs to reach.
pub fn router(state: HttpState) -> Router {
    let max = state.max_callback_bytes;
    Router::new()
        .route(
            "/callbacks/vod",
            post(receive_callback).layer(DefaultBodyLimit::max(max)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// The admin listener: for operators only, loopback by default, optionally behind a token.
pub fn admin_router(state: HttpState, token: Option<Secret>) -> Router {
    let protected = Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/v1/jobs/{job_id}", get(get_job))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let token = token.clone();
                async move {
                    match &token {
                        Some(t) if !operator_token_matches(req.headers(), t) => error_body(
                            StatusCode::UNAUTHORIZED,
                            "InvalidOperatorToken",
                            "the admin endpoints need `Authorization: Bearer <VOD_INGEST_ADMIN_TOKEN>`",
                        ),
                        _ => next.run(req).await,
                    }
                }
            },
        ));
    Router::new()
        .merge(protected)
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

fn operator_token_matches(headers: &HeaderMap, token: &Secret) -> bool {
    let presented = header(headers, "authorization")
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    presented
        .is_some_and(|p| crate::sign::constant_time_eq(p.as_bytes(), token.expose().as_bytes()))
}

fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}

async fn readyz(State(state): State<HttpState>) -> Response {
    let db = sqlx::query("SELECT 1").execute(state.store.pool()).await;
    let amqp = (state.amqp_ready)();
    let body = serde_json::json!({
        "postgres": if db.is_ok() { "ok" } else { "unreachable" },
        "rabbitmq": if amqp { "ok" } else { "unreachable" },
    });
    let status = if db.is_ok() && amqp {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn render_metrics(State(state): State<HttpState>) -> Response {
    if let Ok(counts) = state.store.count_by_state().await {
        for (job_state, count) in counts {
            metrics::gauge!("vod_ingest_jobs", "state" => job_state).set(count as f64);
        }
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn get_job(
    State(state): State<HttpState>,
    job_id: Result<Path<String>, PathRejection>,
) -> Response {
    // Job ids are ASCII: one that is not UTF-8 names no job.
    let Ok(Path(job_id)) = job_id else {
        return error_body(
            StatusCode::NOT_FOUND,
            "JobNotFound",
            "no job with this id (it is not UTF-8)",
        );
    };
    match state.store.get(&job_id).await {
        Ok(Some(job)) => {
            let history = state.store.history(&job_id).await.unwrap_or_default();
            let mut body = serde_json::to_value(&job).expect("a job serializes");
            body["history"] = serde_json::to_value(history).expect("events serialize");
            Json(body).into_response()
        }
        Ok(None) => error_body(
            StatusCode::NOT_FOUND,
            "JobNotFound",
            &format!("no job with id {job_id:?}"),
        ),
        Err(e) => {
            tracing::error!(error = %e, "reading a job failed");
            error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "DatabaseUnavailable",
                "the job store is unreachable; try again",
            )
        }
    }
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

/// The kind whose upload this event reports complete, if it is such an event.
fn completed_kind(event_type: &str) -> Option<JobKind> {
    [JobKind::Video, JobKind::Image, JobKind::AttachedMedia]
        .into_iter()
        .find(|k| k.completion_event() == event_type)
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
    State(state): State<HttpState>,
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
    match store_and_apply(&state, &headers, &body, verdict, parsed, timestamp).await {
        Ok(Outcome::Applied) | Ok(Outcome::Stored) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Outcome::Duplicate) => (StatusCode::OK, "duplicate\n").into_response(),
        Ok(Outcome::Rejected) => {
            log_refusal(verdict, peer);
            error_body(
                StatusCode::UNAUTHORIZED,
                "InvalidSignature",
                verdict.explanation(),
            )
        }
        Ok(Outcome::NotAnEvent) => error_body(
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

enum Outcome {
    Applied,
    Stored,
    Duplicate,
    Rejected,
    NotAnEvent,
}

async fn store_and_apply(
    state: &HttpState,
    headers: &HeaderMap,
    body: &Bytes,
    verdict: Verdict,
    parsed: Option<ParsedEvent>,
    timestamp: Option<&str>,
) -> Result<Outcome, Arc<sqlx::Error>> {
    match (verdict.accepted(), parsed) {
        (true, Some(event)) => {
            let headers = headers_for_storage(headers);
            let signature_timestamp = timestamp.and_then(|t| t.trim().parse::<i64>().ok());
            let may_record_sts = state.record_sts_uploads
                && event.succeeded
                && completed_kind(&event.event_type).is_some();
            // Only an authenticated event may claim a dedup key, so a forged copy cannot
            // shadow it.
            let pending = batch::Pending {
                verification: verdict.as_str(),
                dedup_key: hex::encode(Sha256::digest(body)),
                signature_timestamp,
                headers,
                body: body.clone(),
                event,
                may_record_sts,
            };
            state.callbacks.submit(pending).await
        }
        // Refused or not an event: nothing is stored, so junk at a public URL cannot fill the
        // database; the verdict is counted in `vod_ingest_callbacks_total` and sampled in the log.
        (true, None) => Ok(Outcome::NotAnEvent),
        (false, _) => Ok(Outcome::Rejected),
    }
}
