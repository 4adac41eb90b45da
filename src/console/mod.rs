//! The operator console: HTML pages on the admin listener (`/console`, never the public one)
//! to look at the service and act on it.
//!
//! - `/console`: jobs per state, throughput over the last hour, uploads in progress (live),
//!   the job waiting longest in each non-final state, PostgreSQL and RabbitMQ health;
//! - `/console/jobs`: every job, filtered and searched, in keyset pages;
//! - `/console/jobs/{job_id}`: one job, its history, multipart progress, the callbacks for its
//!   media and what VOD says about it, with retry and cancel (what the CLI does);
//! - `/console/dead-letters`: the dead-letter queue; republish a fixed message, or drop it;
//! - `/console/keys`: client apps' API keys; create (shown once) and revoke; their webhooks
//!   and recent deliveries, redelivered on demand.
//!
//! Pages are rendered on the server (`maud`), with one stylesheet and one small script
//! compiled into the binary; nothing is loaded from elsewhere, so it works offline. Who may
//! use it and how forms are protected: [`guard`]. Everything is read and changed through the
//! same stores the CLI uses (`JobStore`, `KeyStore`, `DeadLetters`).

mod chart;
mod dead_letters;
pub mod guard;
mod jobs;
mod keys;
mod overview;
use crate::keys::sessions;
mod view;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::{html, Markup};
use serde::Deserialize;

use crate::jobs::JobStore;
use crate::jobs::OutboxWaker;
use crate::keys::KeyStore;
use crate::queue::DeadLetters;
use crate::secret::Secret;
use crate::vod::VodClient;
use view::{Notice, Section};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// No script or style from anywhere else, no inline script, no framing by other pages.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How long a page waits for VOD or RabbitMQ before saying it could not ask.
pub(crate) const OUTSIDE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the pages need.
#[derive(Clone)]
pub struct ConsoleState {
    pub store: JobStore,
    pub keys: KeyStore,
    pub vod: VodClient,
    pub dead_letters: Arc<DeadLetters>,
    /// Wakes the event publisher after an operator's retry or cancel.
    pub outbox: OutboxWaker,
    /// Whether the service's own RabbitMQ connection is up (as `/readyz` reports it).
    pub amqp_ready: Arc<dyn Fn() -> bool + Send + Sync>,
    /// `VOD_INGEST_ADMIN_TOKEN`: when set, the console needs it.
    pub token: Option<Secret>,
    /// Logins with the token.
    pub sessions: sessions::SessionStore,
    /// Wrong tokens, counted to slow down guessing.
    pub throttle: Arc<sessions::LoginThrottle>,
    /// `VOD_INGEST_ADMIN_HTTPS`: the console is reached over HTTPS.
    pub https: bool,
    /// Keys' webhook URLs and secrets.
    pub webhooks: crate::app_webhooks::KeyWebhooks,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState")
            .field("dead_letters", &self.dead_letters)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl ConsoleState {
    /// A whole page, 200.
    fn render(
        &self,
        title: &str,
        section: Section,
        notice: Option<Notice>,
        body: Markup,
    ) -> Response {
        self.render_with(StatusCode::OK, title, section, notice, body)
    }

    fn render_with(
        &self,
        status: StatusCode,
        title: &str,
        section: Section,
        notice: Option<Notice>,
        body: Markup,
    ) -> Response {
        let markup = view::page(title, section, self.token.is_some(), notice.as_ref(), body);
        (status, Html(markup.into_string())).into_response()
    }
}

/// The console's routes, and `/` redirecting to it. Merged into the admin router.
pub fn router(state: ConsoleState) -> Router {
    let pages = Router::new()
        .route("/console", get(overview::show))
        .route("/console/api/uploads", get(overview::uploads_json))
        .route("/console/jobs", get(jobs::list))
        .route("/console/jobs/{job_id}", get(jobs::show))
        .route("/console/jobs/{job_id}/retry", post(jobs::retry))
        .route("/console/jobs/{job_id}/cancel", post(jobs::cancel))
        .route("/console/dead-letters", get(dead_letters::list))
        .route(
            "/console/dead-letters/{id}/republish",
            post(dead_letters::republish),
        )
        .route(
            "/console/dead-letters/{id}/drop",
            post(dead_letters::drop_message),
        )
        .route("/console/keys", get(keys::list).post(keys::create))
        .route("/console/keys/{key_id}/revoke", post(keys::revoke))
        .route(
            "/console/keys/{key_id}/settings",
            post(keys::update_settings),
        )
        .route("/console/keys/{key_id}/webhook", post(keys::set_webhook))
        .route("/console/keys/{key_id}/webhook/rotate", post(keys::rotate))
        .route(
            "/console/keys/{key_id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/console/keys/{key_id}/deliveries/{id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .layer(middleware::from_fn_with_state(state.clone(), guard_layer))
        .layer(middleware::from_fn(security_headers))
        .with_state(state);
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .merge(pages)
}

/// The DNS-rebinding rule ([`guard::host_allowed`]) in front of the whole admin listener:
/// `/metrics`, `/readyz` and the job API as well as the console.
pub async fn enforce_host(token_configured: bool, req: Request, next: Next) -> Response {
    match guard::host_allowed(req.headers(), token_configured) {
        Ok(()) => next.run(req).await,
        Err(why) => (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({ "code": "HostNotAllowed", "message": why })),
        )
            .into_response(),
    }
}

/// CSRF and token checks, in that order (see [`guard`]); the host rule runs before, over the
/// whole admin listener ([`enforce_host`]).
async fn guard_layer(State(state): State<ConsoleState>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let path = req.uri().path().to_owned();
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !safe {
        if let Err(why) = guard::same_origin(headers) {
            tracing::warn!(path = %path, "refused a console POST that did not come from a console page");
            return refusal(&state, StatusCode::FORBIDDEN, why);
        }
    }
    let open = path == "/console/login" || path.starts_with("/console/assets/");
    let authorized = match &state.token {
        None => true,
        Some(token) if guard::bearer_matches(headers, token) => true,
        Some(token) => match guard::session_id(headers, state.https) {
            None => false,
            Some(id) => match state.sessions.is_valid(id, token).await {
                Ok(valid) => valid,
                Err(e) => return ConsoleError::Store(e).into_response(),
            },
        },
    };
    if open || authorized {
        return next.run(req).await;
    }
    if path.starts_with("/console/api/") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({
                "code": "InvalidOperatorToken",
                "message": "the console needs VOD_INGEST_ADMIN_TOKEN: log in at /console/login, or send Authorization: Bearer <token>",
            })),
        )
            .into_response();
    }
    if safe {
        return Redirect::to("/console/login").into_response();
    }
    refusal(
        &state,
        StatusCode::UNAUTHORIZED,
        "your console session has ended: log in again at /console/login",
    )
}

fn refusal(state: &ConsoleState, status: StatusCode, why: &str) -> Response {
    state.render_with(
        status,
        "Refused",
        Section::Login,
        Some(Notice::Problem(why.to_owned())),
        html! { p { a href="/console" { "Back to the console" } } },
    )
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    resp
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

fn login_form(state: &ConsoleState, status: StatusCode, problem: Option<&str>) -> Response {
    state.render_with(
        status,
        "Log in",
        Section::Login,
        problem.map(|p| Notice::Problem(p.to_owned())),
        html! {
            h1 { "Log in" }
            p { "This console needs the operator token (" code { "VOD_INGEST_ADMIN_TOKEN" } ")." }
            form.login method="post" action="/console/login" {
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Log in" }
            }
        },
    )
}

async fn login_page(State(state): State<ConsoleState>) -> Response {
    if state.token.is_none() {
        return Redirect::to("/console").into_response();
    }
    login_form(&state, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<ConsoleState>,
    extensions: axum::http::Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(token) = &state.token else {
        return Redirect::to("/console").into_response();
    };
    let addr = extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|p| p.0.ip());
    // Throttled before the token is even compared: guessing gets no answer at all.
    if let Some(wait) = state.throttle.check(addr) {
        let mut resp = login_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "too many wrong tokens from this address: try again in {wait} s"
            )),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return resp;
    }
    if !guard::token_matches(form.token.trim(), token) {
        state.throttle.failed(addr);
        tracing::warn!(client = ?addr, "a console login presented a wrong token");
        return login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("that is not the operator token (VOD_INGEST_ADMIN_TOKEN); try again"),
        );
    }
    let id = match state.sessions.create(token).await {
        Ok(id) => id,
        Err(e) => return ConsoleError::Store(e).into_response(),
    };
    let cookie = guard::session_cookie(Some(id.expose()), state.https);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console")).into_response()
}

/// Ends the session on the server too: a copied cookie stops working at once.
async fn logout(State(state): State<ConsoleState>, req: Request) -> Response {
    if let Some(id) = guard::session_id(req.headers(), state.https) {
        if let Err(e) = state.sessions.end(id).await {
            return ConsoleError::Store(e).into_response();
        }
    }
    (
        [(header::SET_COOKIE, guard::session_cookie(None, state.https))],
        Redirect::to("/console/login"),
    )
        .into_response()
}

/// What can go wrong in a handler, as a page that says what to do.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    Store(sqlx::Error),
    NotFound(String),
    BadRequest(String),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            ConsoleError::Store(e) => {
                tracing::error!(error = %e, "the console cannot read PostgreSQL");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "PostgreSQL did not answer, so this page cannot be shown: check that it is running (DATABASE_URL) and reload".to_owned(),
                )
            }
            ConsoleError::NotFound(what) => (StatusCode::NOT_FOUND, what),
            ConsoleError::BadRequest(what) => (StatusCode::BAD_REQUEST, what),
        };
        let markup = view::page(
            "Problem",
            Section::Overview,
            false,
            Some(&Notice::Problem(text)),
            html! { p { a href="/console" { "Back to the overview" } } },
        );
        (status, Html(markup.into_string())).into_response()
    }
}
