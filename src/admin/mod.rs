//! The operators' endpoints on the private admin listener: `/readyz`, `/metrics` and
//! `/v1/jobs/{job_id}` (the console of [`crate::console`] is mounted beside them), behind the
//! operator token when one is set. Also `/healthz`.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::jobs::JobStore;
use crate::secret::Secret;

/// Everything the handlers need.
#[derive(Clone)]
pub struct AdminState {
    pub store: JobStore,
    /// Whether RabbitMQ is reachable, for `/readyz`.
    pub amqp_ready: Arc<dyn Fn() -> bool + Send + Sync>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// The routes of the admin listener (operators only), as the OpenAPI document names them.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/jobs/{job_id}"),
];

/// The admin listener: for operators only, loopback by default, optionally behind a token.
pub fn router(state: AdminState, token: Option<Secret>) -> Router {
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
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    presented
        .is_some_and(|p| crate::sign::constant_time_eq(p.as_bytes(), token.expose().as_bytes()))
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let db = state.store.ping().await;
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

async fn render_metrics(State(state): State<AdminState>) -> Response {
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
    State(state): State<AdminState>,
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

fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}
