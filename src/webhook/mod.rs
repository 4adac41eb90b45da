//! VOD callbacks (`POST /callbacks/vod`, on the public listener) and the operators' endpoints
//! (`/readyz`, `/metrics`, `/v1/jobs/{job_id}`, on the private admin listener, where the
//! console of [`crate::console`] is mounted too). Both answer `/healthz`.

mod event;
pub mod reconciler;
mod verify;

pub(crate) use event::{parse_event, ParsedEvent};

pub use verify::{CallbackAuth, Verdict};

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::jobs::{Confirmation, JobKind, JobState, JobStore, MediaOwner, Optimistic, RawCallback};
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

async fn receive_callback(
    State(state): State<HttpState>,
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
    let timestamp = header(&headers, "x-vod-timestamp");
    let verdict = state.auth.verify(
        timestamp,
        header(&headers, "x-vod-signature"),
        chrono::Utc::now().timestamp(),
    );
    let parsed = parse_event(&body);
    metrics::counter!("vod_ingest_callbacks_total", "verification" => verdict.as_str())
        .increment(1);
    match store_and_apply(&state, &headers, &body, verdict, parsed.as_ref(), timestamp).await {
        Ok(Outcome::Applied) | Ok(Outcome::Stored) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Outcome::Duplicate) => (StatusCode::OK, "duplicate\n").into_response(),
        Ok(Outcome::Rejected) => {
            tracing::warn!(verification = verdict.as_str(), "rejected a callback");
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
    body: &[u8],
    verdict: Verdict,
    parsed: Option<&ParsedEvent>,
    timestamp: Option<&str>,
) -> Result<Outcome, sqlx::Error> {
    let accepted = verdict.accepted();
    // Only an authenticated event may claim a dedup key, so a forged copy cannot shadow it.
    let dedup_key = (accepted && parsed.is_some()).then(|| hex::encode(Sha256::digest(body)));
    let headers = headers_for_storage(headers);
    let signature_timestamp = timestamp.and_then(|t| t.trim().parse::<i64>().ok());
    // The fast paths, in autocommit. The first statement stores an event that concerns no job
    // (its media is no job's, or it names none) and otherwise reads the job that owns the
    // media; a processing event for that job is then stored and merged by one more statement
    // that writes only if the job is still as read. Everything else (a duplicate, a changed
    // job, upload events, jobs waiting for their upload confirmation, unauthenticated events
    // for a job's media) takes the transaction below, which decides. Upload events that may
    // be recorded as STS uploads always take it.
    let raw = RawCallback {
        verification: verdict.as_str(),
        event_type: parsed.map(|p| p.event_type.as_str()),
        media_id: parsed.and_then(|p| p.media_id.as_deref()),
        signature_timestamp,
        dedup_key: dedup_key.as_deref(),
        headers: &headers,
        body,
        event_time: parsed.and_then(|p| p.event_time),
    };
    let may_record_sts = state.record_sts_uploads
        && parsed.is_some_and(|p| p.succeeded && completed_kind(&p.event_type).is_some());
    if !may_record_sts {
        type Row = (
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<serde_json::Value>,
        );
        let (stored, job_id, kind, job_state, media_status, media_detail): Row = raw.bind(sqlx::query_as(
            "WITH owner AS (
                 SELECT job_id, kind, state, media_status, media_detail FROM ingest_jobs
                 WHERE media_id = $3
             ), ins AS (
                 INSERT INTO vod_events (verification, event_type, media_id, signature_timestamp, dedup_key, headers, body, event_time)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8
                 WHERE NOT EXISTS (SELECT 1 FROM owner)
                 ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
                 RETURNING id
             )
             SELECT (SELECT id FROM ins), o.job_id, o.kind, o.state, o.media_status, o.media_detail
             FROM (SELECT 1) AS one LEFT JOIN owner o ON true",
        ))
        .fetch_one(state.store.pool())
        .await?;
        if stored.is_some() {
            return Ok(match (accepted, parsed) {
                (false, _) => Outcome::Rejected,
                (true, None) => Outcome::NotAnEvent,
                (true, Some(_)) => Outcome::Stored,
            });
        }
        let owner = match (job_id, kind, job_state, media_detail) {
            (Some(job_id), Some(kind), Some(state), Some(media_detail)) => Some(MediaOwner {
                job_id,
                kind,
                state,
                media_status,
                media_detail,
            }),
            _ => None,
        };
        // A job waiting for its upload confirmation may complete by this event: the
        // transaction handles that.
        let waits_for_upload = |o: &MediaOwner| {
            o.state == JobState::Uploaded.as_str() || o.state == JobState::AwaitingUpload.as_str()
        };
        if let (Some(owner), Some(event), true) = (&owner, parsed, accepted) {
            if let (Some(update), None, false) = (
                &event.update,
                completed_kind(&event.event_type),
                waits_for_upload(owner),
            ) {
                match state
                    .store
                    .apply_media_if_unchanged(owner, update, &raw)
                    .await?
                {
                    Optimistic::Applied(applied) => {
                        if !applied.milestones.is_empty() {
                            // Wakes the outbox publisher for the milestones.
                            let _ = state.transitions.send(applied.wake());
                        }
                        return Ok(Outcome::Applied);
                    }
                    Optimistic::Duplicate => return Ok(Outcome::Duplicate),
                    Optimistic::Changed => {}
                }
            }
        }
    }
    let mut tx = state.store.pool().begin().await?;
    let id: Option<(i64,)> = raw
        .bind(sqlx::query_as(
            "INSERT INTO vod_events (verification, event_type, media_id, signature_timestamp, dedup_key, headers, body, event_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
             RETURNING id",
        ))
        .fetch_optional(&mut *tx)
        .await?;
    let Some((id,)) = id else {
        tx.commit().await?;
        return Ok(Outcome::Duplicate);
    };
    if !accepted {
        tx.commit().await?;
        return Ok(Outcome::Rejected);
    }
    let Some(event) = parsed else {
        tx.commit().await?;
        return Ok(Outcome::NotAnEvent);
    };
    let mut outcome = Outcome::Stored;
    let mut transition = None;
    let upload_kind = completed_kind(&event.event_type);
    if let (Some(kind), true, Some(media_id)) = (upload_kind, event.succeeded, &event.media_id) {
        let confirmation = Confirmation {
            via: &event.event_type,
            size: event.size,
        };
        transition = JobStore::complete_by_media_in(&mut tx, media_id, confirmation).await?;
        if transition.is_none() && state.record_sts_uploads {
            transition = JobStore::record_sts_upload_in(
                &mut tx,
                kind,
                media_id,
                event.size,
                &event.event_type,
            )
            .await?;
        }
        // Marked applied only when it moved the job: an upload event that beat the worker
        // stays unapplied, for `mark_uploaded` to find.
        if let Some(t) = &transition {
            mark_applied(&mut tx, id, &t.job_id).await?;
            outcome = Outcome::Applied;
        }
    }
    let mut media = None;
    if let (Some(update), Some(media_id)) = (&event.update, &event.media_id) {
        // A processing event proves VOD has the file: it completes a job whose upload event
        // was lost. Upload events were applied above.
        let confirm = upload_kind.is_none().then_some(Confirmation {
            via: &event.event_type,
            size: None,
        });
        if let Some(applied) = JobStore::apply_media_in(&mut tx, media_id, update, confirm).await? {
            if upload_kind.is_none() {
                mark_applied(&mut tx, id, &applied.job_id).await?;
                outcome = Outcome::Applied;
            }
            if applied.transition.is_some() {
                transition = applied.transition.clone();
            }
            media = Some(applied);
        }
    }
    tx.commit().await?;
    if let Some(t) = transition {
        tracing::info!(job_id = %t.job_id, media_id = ?t.media_id, state = %t.state, via = %event.event_type, "job moved on by callback");
        let _ = state.transitions.send(t);
    } else if let Some(applied) = media.filter(|m| !m.milestones.is_empty()) {
        // Wakes the outbox publisher for the milestones.
        let _ = state.transitions.send(applied.wake());
    }
    Ok(outcome)
}
