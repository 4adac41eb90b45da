//! The client authorization API: VOD's "application server" role. Browser and mobile apps
//! upload straight to OSS; they ask here, with an API key, for an upload URL and credential
//! (`POST /v1/uploads`, `POST /v1/uploads/{job_id}/refresh`) or for an STS token
//! (`POST /v1/sts-token`). Credential uploads get a job row (origin `client`) that VOD's
//! callback completes; STS uploads are recorded when their callback arrives (origin `sts`).
//!
//! Also here: the browser upload page (`/upload`) and the API's OpenAPI document
//! (`/openapi.json`).

mod budget;
mod page;
mod post_form;
pub mod sts;
mod uploads;

pub use budget::{LocalBudget, OriginCache};
pub use page::{upload_connect_src, ALI_OSS_BUNDLE};
pub use sts::{StsSettings, TokenIssuer};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::jobs::JobStore;
use crate::jobs::OutboxWaker;
use crate::keys::{audit, presented_sha256, ApiKey, AuditEntry, Budget, KeyRejection, KeyStore};
use crate::vod::{VodClient, VodError};

/// Request bodies are small JSON documents.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The routes this module serves, as the OpenAPI document names them (a test keeps the two
/// in step).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/uploads"),
    ("get", "/v1/uploads/{job_id}"),
    ("post", "/v1/uploads/{job_id}/refresh"),
    ("post", "/v1/uploads/{job_id}/cancel"),
    ("post", "/v1/sts-token"),
    ("get", "/upload"),
    ("get", "/openapi.json"),
];

/// The OpenAPI 3 document of the public HTTP API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Everything the handlers need.
#[derive(Clone)]
pub struct ApiState {
    pub store: JobStore,
    pub keys: KeyStore,
    pub vod: VodClient,
    /// `None` when `VOD_INGEST_STS_ROLE_ARN` is not set: STS tokens are not handed out.
    pub tokens: Option<Arc<TokenIssuer>>,
    pub outbox: OutboxWaker,
    pub region: String,
    /// Where the page's third-party assets (the ali-oss browser bundle) are read from.
    pub web_dir: PathBuf,
    /// Keys over their budget, refused from memory; their refusals, counted together.
    pub budget: Arc<LocalBudget>,
    /// The origins some active key allows, for preflights.
    pub origins: Arc<OriginCache>,
    /// The page's `connect-src`: where the browser may upload (OSS endpoints).
    pub upload_page_connect_src: String,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("tokens", &self.tokens)
            .field("web_dir", &self.web_dir)
            .finish_non_exhaustive()
    }
}

pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/v1/uploads", post(uploads::create))
        .route("/v1/uploads/{job_id}", get(uploads::status))
        .route("/v1/uploads/{job_id}/refresh", post(uploads::refresh))
        .route("/v1/uploads/{job_id}/cancel", post(uploads::cancel))
        .route("/v1/sts-token", post(uploads::sts_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), cors));
    Router::new()
        .merge(api)
        .route("/upload", get(page::index))
        .route("/upload/upload.js", get(page::script))
        .route("/upload/vendor/aliyun-oss-sdk.min.js", get(page::ali_oss))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .with_state(state)
}

/// An API refusal: `{code, message}` with a status that says who must act.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn store_unavailable(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "the client API cannot reach PostgreSQL");
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "StoreUnavailable",
            "the service cannot record the upload right now; try again shortly",
        );
        err.retry_after_secs = Some(5);
        err
    }

    /// VOD or STS refused or failed. A refusal caused by what the client sent (a bad
    /// extension, a title too long) is passed on as 400 with VOD's own code and message;
    /// a transient failure is 503 with `Retry-After`; anything else is the service's own
    /// problem (credentials, permissions) and is 502 without VOD's details, which go to the log.
    fn from_vod(action: &str, e: &VodError) -> Self {
        if caused_by_request(e.code()) {
            return Self::bad_request(e.code(), e.message());
        }
        if e.is_retryable() {
            tracing::warn!(action, error = %e, "VOD failed transiently");
            let mut err = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "VodUnavailable",
                format!(
                    "{action} failed for a reason that should pass ({}); try again",
                    e.code()
                ),
            );
            err.retry_after_secs = Some(5);
            return err;
        }
        tracing::error!(action, error = %e, "VOD refused the service's request");
        Self::new(
            StatusCode::BAD_GATEWAY,
            "VodRefused",
            format!(
                "VOD refused the service's {action} call ({}); this is the service's configuration, not your request: its operators have the details in their logs",
                e.code()
            ),
        )
    }
}

/// VOD codes that describe the request's own parameters (`docs/reference/vod-api.md` §1, §5.2), as opposed
/// to the service's credentials, permissions or VOD's health.
fn caused_by_request(code: &str) -> bool {
    let about_the_caller = code.starts_with("InvalidAccessKey")
        || code.starts_with("InvalidSecurityToken")
        || code.starts_with("InvalidTimeStamp")
        || code.starts_with("InvalidSignature")
        || code == "InvalidApi.NotFound"
        || code == "InvalidVersion";
    let about_the_request = code.starts_with("Invalid")
        || code.starts_with("Missing")
        || matches!(
            code,
            "IllegalCharacters" | "LengthExceededMax" | "TagsExceededMax"
        );
    about_the_request && !about_the_caller
}

/// A body axum could not read (over the limit, or cut off), as `{code, message}` like every
/// other answer of this API: axum's own rejection is plain text.
impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BodyTooLarge",
                format!("the request body is over {MAX_BODY_BYTES} bytes; this API takes small JSON documents"),
            )
        } else {
            Self::bad_request(
                "InvalidRequest",
                format!(
                    "the request body could not be read: {}",
                    rejection.body_text()
                ),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "code": self.code, "message": self.message })),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The request's origin and peer, for the audit and CORS.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: ApiKey,
    pub origin: Option<String>,
    pub addr: Option<String>,
}

impl Caller {
    async fn audit(
        &self,
        state: &ApiState,
        action: &str,
        job_id: Option<&str>,
        media_id: Option<&str>,
        outcome: &str,
    ) {
        let entry = AuditEntry {
            key_id: &self.key.key_id,
            action,
            job_id,
            media_id,
            client_addr: self.addr.clone(),
            http_origin: self.origin.as_deref(),
            outcome,
            repeats: 1,
        };
        // The credential is already issued; a missing audit row is logged, not fatal.
        if let Err(e) = audit(state.store.pool(), &entry).await {
            tracing::error!(error = %e, action, key_id = %self.key.key_id, "could not write the audit record");
        }
    }
}

/// Browsers send `Origin` on every POST, even from a page this service served itself (the
/// upload page); such a request is not cross-origin and needs no entry in the key's list.
fn is_same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// Authenticates the key, checks the origin against it and counts the request.
impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let presented = bearer(&parts.headers).map(presented_sha256);
        let rate_limited = |rpm: u32, retry_after_secs: u64| {
            let mut err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimited",
                format!(
                    "this API key may make {rpm} requests a minute; try again in {retry_after_secs} s"
                ),
            );
            err.retry_after_secs = Some(retry_after_secs);
            err
        };
        // A key already over its budget is refused before any database work.
        if let Some(refused) = presented
            .as_ref()
            .and_then(|p| state.budget.check(p, addr.as_deref(), origin.as_deref()))
        {
            return Err(rate_limited(
                refused.requests_per_minute,
                refused.retry_after_secs,
            ));
        }
        let key = match state
            .keys
            .authenticate(bearer(&parts.headers))
            .await
            .map_err(ApiError::store_unavailable)?
        {
            Ok(key) => key,
            Err(rejection) => {
                let (code, message) = match rejection {
                    KeyRejection::Missing => (
                        "MissingApiKey",
                        "send the API key as `Authorization: Bearer vik_...` (operators create keys with `vod-ingest api-key create`)",
                    ),
                    KeyRejection::Invalid => (
                        "InvalidApiKey",
                        "the API key is not valid: check that it was copied whole",
                    ),
                    KeyRejection::Revoked => (
                        "ApiKeyRevoked",
                        "the API key was revoked: ask the service's operators for a new one",
                    ),
                };
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, code, message));
            }
        };
        let same_origin = origin
            .as_deref()
            .is_some_and(|o| is_same_origin(o, &parts.headers));
        if let Some(o) = origin.as_deref().filter(|_| !same_origin) {
            if !key.allows_origin(o) {
                let message = if o.trim().eq_ignore_ascii_case("null") {
                    "this page has no origin of its own (Origin: null: a sandboxed frame or a file: page), which no key may allow: serve the page from an http(s) origin and add that to the key".to_owned()
                } else {
                    format!("this API key may not be used from {o}: add the origin to the key (api-key create --origin)")
                };
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "OriginNotAllowed",
                    message,
                ));
            }
        }
        let caller = Caller { key, origin, addr };
        match state
            .keys
            .count_request(&caller.key)
            .await
            .map_err(ApiError::store_unavailable)?
        {
            Budget::Within => Ok(caller),
            Budget::Exceeded { retry_after_secs } => {
                // Audited together with the rest of the minute's refusals (one row).
                if let Some(p) = presented {
                    state.budget.exhausted(
                        p,
                        &caller.key.key_id,
                        caller.key.limits.requests_per_minute,
                        caller.addr.as_deref(),
                        caller.origin.as_deref(),
                    );
                }
                Err(rate_limited(
                    caller.key.limits.requests_per_minute,
                    retry_after_secs,
                ))
            }
        }
    }
}

/// CORS for the API. A preflight carries no key, so it is answered for an origin that some
/// active key allows; the actual request is then held to its own key's list (see [`Caller`]).
async fn cors(State(state): State<ApiState>, req: axum::extract::Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    // `null` is never reflected: any sandboxed or `file:` page can send it.
    let opaque = origin.trim().eq_ignore_ascii_case("null");
    let allowed = if opaque {
        false
    } else {
        match state.origins.allows(&state.keys, &origin).await {
            Ok(allowed) => allowed,
            Err(e) => return ApiError::store_unavailable(e).into_response(),
        }
    };
    let is_preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_preflight {
        if !allowed {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "OriginNotAllowed",
                format!("no API key may be used from {origin}"),
            )
            .into_response();
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        set_cors_headers(h, &origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return response;
    }
    let mut response = next.run(req).await;
    // Error bodies too, so a browser app can show why it was refused.
    if allowed {
        set_cors_headers(response.headers_mut(), &origin);
    }
    response
}

fn set_cors_headers(h: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after"),
    );
    h.append(header::VARY, HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vod_refusals_are_the_clients_only_when_they_are_about_its_request() {
        for code in [
            "InvalidFileName.Extension",
            "IllegalCharacters",
            "LengthExceededMax",
            "TagsExceededMax",
            "InvalidTemplateGroupId.NotFound",
            "InvalidStorage.NotFound",
            "MissingTitle",
        ] {
            assert!(caused_by_request(code), "{code}");
        }
        for code in [
            "InvalidAccessKeyId.NotFound",
            "InvalidSecurityToken.Expired",
            "InvalidTimeStamp.Expired",
            "SignatureDoesNotMatch",
            "Forbidden.RAM",
            "ServiceUnavailable",
            "InvalidApi.NotFound",
        ] {
            assert!(!caused_by_request(code), "{code}");
        }
    }

    #[test]
    fn same_origin_is_the_host_the_request_was_sent_to() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(is_same_origin("http://127.0.0.1:8080", &h));
        assert!(!is_same_origin("http://127.0.0.1:8081", &h));
        assert!(!is_same_origin("http://evil.example", &h));
        assert!(!is_same_origin("null", &h));
        assert!(!is_same_origin("http://127.0.0.1:8080", &HeaderMap::new()));
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut public = Vec::new();
        let mut admin = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let is_admin = op["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "admin"));
                let entry = (method.clone(), path.clone());
                if is_admin {
                    admin.push(entry)
                } else {
                    public.push(entry)
                }
            }
        }
        let routes = |list: &[&[(&str, &str)]]| {
            let mut v: Vec<(String, String)> = list
                .iter()
                .flat_map(|l| l.iter())
                .map(|(m, p)| (m.to_string(), p.to_string()))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        public.sort();
        admin.sort();
        assert_eq!(public, routes(&[ROUTES, crate::webhook::ROUTES]));
        // /healthz is on both listeners and documented once.
        let admin_only: Vec<(&str, &str)> = crate::admin::ROUTES
            .iter()
            .copied()
            .filter(|r| !crate::webhook::ROUTES.contains(r))
            .collect();
        assert_eq!(admin, routes(&[&admin_only]));
    }
}
