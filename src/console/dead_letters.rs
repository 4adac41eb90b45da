//! `/console/dead-letters`: what the consumer refused, and why; publish a message again after
//! fixing it, or drop it. How messages are shown and picked without a "list" in AMQP:
//! [`crate::queue::DeadLetters`].

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::view::{self, Notice, Section};
use super::{ConsoleError, ConsoleState, OUTSIDE_TIMEOUT};
use crate::jobs::JobMessage;
use crate::queue::DeadLetterError;

/// How many messages the page shows (each look holds them all for a moment).
const SHOWN: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    notice: String,
}

pub(super) async fn list(
    State(state): State<ConsoleState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let notice = match query.notice.as_str() {
        "republished" => Some(Notice::Done(
            "Published to the jobs queue (confirmed) and removed from the dead letters.".into(),
        )),
        "dropped" => Some(Notice::Done("The dead letter is dropped.".into())),
        _ => None,
    };
    Ok(page(&state, StatusCode::OK, notice, None).await)
}

/// The page; `edited` keeps an operator's edit of one message (by id) on a refusal.
async fn page(
    state: &ConsoleState,
    status: StatusCode,
    notice: Option<Notice>,
    edited: Option<(&str, &str)>,
) -> Response {
    let queue = state.dead_letters.queue_name();
    let jobs_queue = state.dead_letters.jobs_queue_name();
    let listed = tokio::time::timeout(OUTSIDE_TIMEOUT, state.dead_letters.list(SHOWN)).await;
    let depth = match tokio::time::timeout(OUTSIDE_TIMEOUT, state.dead_letters.depths()).await {
        Ok(Ok(d)) => Some(d.dead_letters),
        _ => None,
    };
    let (messages, problem) = match listed {
        Ok(Ok(m)) => (m, None),
        Ok(Err(e)) => (Vec::new(), Some(format!("RabbitMQ: {e}; the dead letters cannot be shown (check AMQP_URL and that RabbitMQ runs)"))),
        Err(_) => (Vec::new(), Some("RabbitMQ did not answer within 5 s; the dead letters cannot be shown".into())),
    };
    let notice = notice.or(problem.map(Notice::Problem));
    let body = html! {
        h1 { "Dead letters" }
        p {
            "Messages in " code { (queue) } " that could not be taken as jobs"
            @if let Some(d) = depth { ": " strong { (d) } }
            @if messages.len() >= SHOWN { " (the oldest " (SHOWN) " are shown)" }
            ". Fix one and publish it to " code { (jobs_queue) } " (with a publisher confirm), or drop it."
        }
        @if messages.is_empty() {
            p.empty { "The dead-letter queue is empty." }
        }
        @for m in &messages {
            @let body_text = match edited {
                Some((id, text)) if id == m.id => text.to_owned(),
                _ => pretty_body(&m.body),
            };
            article.dead-letter id={ "dl-" (m.id) } {
                header {
                    span.mono title=(m.id) { (&m.id[..12]) }
                    @if let Some(ct) = &m.content_type { " · " (ct) }
                }
                p.reason {
                    strong { "Reason: " }
                    @match &m.reason {
                        Some(r) => (r),
                        None => "none recorded (RabbitMQ dead-lettered it itself: see x-death)",
                    }
                }
                @if !m.headers.is_empty() {
                    details {
                        summary { "headers" }
                        dl.fields {
                            @for (name, value) in &m.headers { dt.mono { (name) } dd.mono { (value) } }
                        }
                    }
                }
                form.republish method="post" action={ "/console/dead-letters/" (m.id) "/republish" }
                    data-confirm={ "Publish this message to " (jobs_queue) "?" } {
                    label for={ "body-" (m.id) } { "Message (JSON)" }
                    textarea id={ "body-" (m.id) } name="body" rows="8" spellcheck="false" { (body_text) }
                    div.buttons {
                        button.primary type="submit" { "Publish to " (jobs_queue) }
                    }
                }
                (view::action_button(&format!("/console/dead-letters/{}/drop", m.id), "Drop", "danger",
                    Some("Drop this dead letter for good?")))
            }
        }
    };
    state.render_with(status, "Dead letters", Section::DeadLetters, notice, body)
}

/// The body as stored, pretty-printed when it is JSON (what is published is what the
/// operator leaves in the box).
fn pretty_body(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string()),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RepublishForm {
    body: String,
}

fn valid_id(id: &str) -> Result<(), ConsoleError> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ConsoleError::BadRequest(format!(
            "{id:?} is not a dead letter's id (64 hex digits)"
        )))
    }
}

pub(super) async fn republish(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Form(form): Form<RepublishForm>,
) -> Result<Response, ConsoleError> {
    valid_id(&id)?;
    // Refuse what the consumer would dead-letter again (bad JSON, unknown fields, no kind).
    // Source checks happen in the consumer, against its roots.
    if let Err(why) = JobMessage::from_json(form.body.as_bytes()) {
        let text = format!("Not published: {why}. Fix the message and try again.");
        return Ok(page(
            &state,
            StatusCode::BAD_REQUEST,
            Some(Notice::Problem(text)),
            Some((&id, &form.body)),
        )
        .await);
    }
    let result = state
        .dead_letters
        .republish(&id, form.body.as_bytes())
        .await;
    settled(&state, &id, result, "republished", Some(&form.body)).await
}

pub(super) async fn drop_message(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    valid_id(&id)?;
    let result = state.dead_letters.drop_message(&id).await;
    settled(&state, &id, result, "dropped", None).await
}

async fn settled(
    state: &ConsoleState,
    id: &str,
    result: Result<(), DeadLetterError>,
    done: &str,
    edited: Option<&str>,
) -> Result<Response, ConsoleError> {
    match result {
        Ok(()) => {
            tracing::info!(dead_letter = %id, action = done, "an operator settled a dead letter from the console");
            Ok(Redirect::to(&format!("/console/dead-letters?notice={done}")).into_response())
        }
        Err(e) => {
            let status = match e {
                DeadLetterError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            tracing::warn!(dead_letter = %id, error = %e, "a console action on a dead letter failed");
            Ok(page(
                state,
                status,
                Some(Notice::Problem(e.to_string())),
                edited.map(|text| (id, text)),
            )
            .await)
        }
    }
}
